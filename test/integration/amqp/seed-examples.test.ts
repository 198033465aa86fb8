import { AMQP_URL } from "../../helpers/brokers.js";
import { describeSeedExamples } from "../seed-examples.suite.js";
import { amqpAvailable, deleteNamespace } from "./amqp-helpers.js";
import { lockBroker } from "./broker-lock.js";

describeSeedExamples({
  name: "RabbitMQ",
  kind: "amqp",
  url: AMQP_URL,
  available: amqpAvailable,
  cleanup: deleteNamespace,
  lock: () => lockBroker(),
});
