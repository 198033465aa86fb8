/** fastagentic: the public API. Every export is listed by name. */

export type {
  DeadLetter,
  DeadLetterPage,
  DeadLetters,
  ListDeadLettersOptions,
  RetryDeadLetterOptions,
} from "../transports/dead-letters.js";
export {
  assertPartition,
  type EntityMailbox,
  type HoldOptions,
  type MailboxMessage,
  type PartitionHold,
  partitionOf,
} from "../transports/entity-mailbox.js";
export type {
  DeadEvent,
  EventGroupInfo,
  EventLog,
  EventLogOptions,
  EventStart,
} from "../transports/event-log.js";
export {
  type FinishedEntry,
  type FinishedRecord,
  LocalFinishedRecord,
} from "../transports/finished-record.js";
export { InMemoryTransport, type InMemoryTransportOptions } from "../transports/memory/memory.transport.js";
export { MemoryEntityMailbox } from "../transports/memory/memory-entity-mailbox.js";
export { MemoryStateStore } from "../transports/memory/memory-state-store.js";
export type { StateStore, StoredValue } from "../transports/state-store.js";
export {
  type ConsumeOptions,
  type Consumer,
  type Delivery,
  deadLetterQueueOf,
  type EnqueueOptions,
  type FanoutMessage,
  type PublishOptions,
  type Subscription,
  type Transport,
  type TransportState,
  type TransportStatusEvent,
} from "../transports/transport.js";
export {
  type AgentEndpointOptions,
  type AgentRequest,
  App,
  type AppOptions,
  DEFAULT_BODY_LIMIT,
  type ListenOptions,
  type ShutdownSignalOptions,
} from "./app/app.js";
export {
  type AuthDecision,
  type AuthFunction,
  type AuthRefusal,
  type AuthRequest,
  type BearerTokenOptions,
  bearerToken,
} from "./app/auth.js";
export { type CoordinatorRoutesOptions, coordinatorRoutes } from "./app/coordinator-routes.js";
export type { DashboardProvider } from "./app/dashboard/dashboard-provider.js";
export { type DashboardOptions, dashboardRoutes } from "./app/dashboard/dashboard-routes.js";
export { type HttpErrorBody, type HttpFailure, toHttpFailure } from "./app/http-errors.js";
export {
  CoordinatorMetrics,
  type CoordinatorMetricsOptions,
  DEFAULT_LATENCY_BUCKETS,
} from "./app/metrics.js";
export { type Clock, SimulatedClock, systemClock } from "./clock.js";
export {
  type CoordinatorConfig,
  type CoordinatorConfigInput,
  DEFAULT_COORDINATOR_CONFIG,
  DEFAULT_WORKER_CONFIG,
  type RestartIntensity,
  type RetryBackoff,
  type WorkerConfig,
} from "./config.js";
export {
  Coordinator,
  type CoordinatorOptions,
} from "./coordinator.js";
export {
  DeadLetterApi,
  type DeadLetterCounts,
  type DeadLetterInfo,
  type DeadLetterList,
  type DeadLetterListOptions,
} from "./dead-letters/dead-letter-api.js";
export { Actor, type ActorDecorator } from "./decorators/actor.decorator.js";
export { type ActorLifecycle, type ExploredActor, exploreActor } from "./decorators/actor-explorer.js";
export type { ActorOptions, HandlerOptions } from "./decorators/actor-options.js";
export { Handler, type HandlerDecorator } from "./decorators/handler.decorator.js";
export {
  type HandlerModule,
  type HandlerModuleTarget,
  handlersFromModule,
} from "./decorators/handler-module.js";
export {
  type AnyEntityDefinition,
  defineEntity,
  type EntityDefinition,
  type EntityOptions,
  isEntityDefinition,
} from "./entities/define-entity.js";
export { Entity, type EntityDecorator } from "./entities/entity.decorator.js";
export { type EntityActionArgs, sendToEntity } from "./entities/entity-actions.js";
export { stateStoreFromUrl } from "./entities/entity-backends.js";
export {
  type AskOptions,
  readEntity,
  type SendOptions as EntitySendOptions,
} from "./entities/entity-client.js";
export type { EntitiesOptions } from "./entities/entity-hosting.js";
export type { EntityEvent, EntitySnapshot } from "./entities/entity-logic.js";
export type { EntityEventSink } from "./entities/entity-outbox.js";
export { EntityRef } from "./entities/entity-ref.js";
export {
  ConfigError,
  ConnectionError,
  EntityAskTimeoutError,
  EntityError,
  EntityEventError,
  EntityRejectedError,
  EntitySnapshotError,
  EscalationError,
  FastAgenticError,
  type FastAgenticErrorOptions,
  HttpError,
  InvalidNameError,
  LifecycleHookError,
  MalformedMessageError,
  NoHandlerError,
  NotSerializableError,
  PayloadTooLargeError,
  PublishError,
  QueueFullError,
  StateConflictError,
  StateError,
  TaskCancelledError,
  TaskError,
  TaskFailedError,
  TaskIdConflictError,
  TaskTimeoutError,
  TransportError,
  UnknownDeadLetterError,
  UnknownTaskError,
  UnrecoverableError,
  ValidationError,
  WaitTimeoutError,
} from "./errors.js";
export {
  EventBus,
  type EventBusOptions,
  type EventSubscription,
  type PublishEventOptions,
  type PublishedEvent,
  type SubscribeOptions,
} from "./events/event-bus.js";
export type { BusEvent } from "./events/event-codec.js";
export type { EventContext, EventHandler, SubscriptionStats } from "./events/event-subscription.js";
export { type EventHandlerMetadata, On, type OnDecorator } from "./events/on.decorator.js";
export type { TaskLifecycleEvent } from "./events/task-lifecycle.js";
export { type Logger, silentLogger } from "./logger.js";
export {
  InMemoryWorkerRegistry,
  TransportWorkerRegistry,
  UnknownWorkerError,
  type WorkerQuery,
} from "./registry.js";
export {
  type DequeueOptions,
  type EnqueueOptions as EnqueueTaskOptions,
  TaskQueue,
  type TaskQueueOptions,
} from "./task-queue.js";
export { type TransportUrlOptions, transportFromUrl } from "./transport-url.js";
export {
  isTerminal,
  type SubmitOptions,
  type Task,
  type TaskContext,
  type TaskHandler,
  TaskPriority,
  type TaskResult,
  TaskStatus,
  type WaitOptions,
  type WorkerInfo,
  WorkerStatus,
} from "./types.js";
export { Worker, type WorkerExit, type WorkerOptions } from "./worker.js";
export { WorkerPool, type WorkerPoolOptions, type WorkerPoolStats } from "./worker-pool.js";
export type { ExecuteOptions } from "./worker-runs.js";
