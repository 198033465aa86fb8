/**
 * Leader elections in a JetStream cluster. Each replicated stream and consumer is a Raft group
 * with a leader; publishes (their acks) and pull requests are answered by the leader alone. When
 * that node dies, what was sent to it gets no answer, and the client would find out only when
 * its own timer fires (a publish after publishTimeoutMs, a pull after its expiry). The servers
 * announce every election on `$JS.EVENT.ADVISORY.{STREAM,CONSUMER}.LEADER_ELECTED.…`; watching
 * them lets the transport send its publishes and pulls to the new leader the moment it exists.
 * Only a transport with replicas > 1 watches (a single server, or replicas 1, has no failover).
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";

export interface LeaderEvents {
  /** A stream of this namespace has a new leader. */
  streamLeader(stream: string): void;
  /** A consumer of a stream of this namespace has a new leader. */
  consumerLeader(stream: string, consumer: string): void;
}

const STREAM_ELECTED = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.";
const CONSUMER_ELECTED = "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.";

/**
 * Subscribes to the leader elections of the streams whose names start with `streamPrefix`;
 * returns a function that unsubscribes. The subject says which stream and consumer; the body
 * (JSON) is not read.
 */
export function watchLeaders(nc: NatsConnection, streamPrefix: string, events: LeaderEvents): () => void {
  const subs: Subscription[] = [
    nc.subscribe(`${STREAM_ELECTED}*`, {
      callback: (_err, msg) => {
        const stream = msg.subject.slice(STREAM_ELECTED.length);
        if (stream.startsWith(streamPrefix)) safely(() => events.streamLeader(stream));
      },
    }),
    nc.subscribe(`${CONSUMER_ELECTED}*.*`, {
      callback: (_err, msg) => {
        const rest = msg.subject.slice(CONSUMER_ELECTED.length);
        const dot = rest.indexOf(".");
        const stream = rest.slice(0, dot);
        if (dot > 0 && stream.startsWith(streamPrefix)) {
          safely(() => events.consumerLeader(stream, rest.slice(dot + 1)));
        }
      },
    }),
  ];
  return () => {
    for (const sub of subs) if (!sub.isClosed()) sub.unsubscribe();
  };
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
