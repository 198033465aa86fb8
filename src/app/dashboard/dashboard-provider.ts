/**
 * A panel the dashboard shows beside its own: another capability (entities, event groups, your
 * own) plugs in by giving a summary table and/or a lookup by id. `mountDashboard(coordinator,
 * { providers })` takes them; the page renders them without knowing what they are.
 */
export interface DashboardProvider {
  /** Its name in URLs: 1-64 letters, digits, "_" or "-". */
  readonly name: string;
  /** The panel's heading. */
  readonly title: string;
  /** Rows of plain values shown as a table, sampled every few seconds while a page is open (e.g. event groups and their lag). */
  summary?(): Promise<Array<Record<string, unknown>>>;
  /** One item by id (e.g. an entity's state, context and version), shown as JSON; undefined when there is none. */
  lookup?(id: string): Promise<unknown>;
}
