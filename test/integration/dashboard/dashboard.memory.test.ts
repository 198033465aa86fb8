import { InMemoryTransport } from "../../../src/index.js";
import { describeDashboardInBrowser } from "./dashboard-browser.suite.js";

describeDashboardInBrowser({
  name: "memory",
  available: async () => true,
  transport: () => new InMemoryTransport(),
  depthPerPriority: true,
});
