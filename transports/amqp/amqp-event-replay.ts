/**
 * Replay on RabbitMQ: a new group's `from` is read from the stream queue (`x-stream-offset`: an
 * offset, or "first") and the matching events are copied, confirmed, into the
 * group's queue, with their stream offset in a header (the delivery's `sequence`); from a time, it
 * reads from the start and skips what was stored before (see `notBefore`). Reading stops
 * at a marker this replay puts into the stream itself (through the default exchange, so no
 * group queue gets it): everything appended before the marker has been read then.
 */
import { randomUUID } from "node:crypto";
import type { Channel, ConfirmChannel, ConsumeMessage } from "amqplib";
import { TransportError } from "../../src/errors.js";
import { type EventStart, patternMatches } from "../event-log.js";
import { type AmqpEventLink, type AmqpEventNames, H_MARKER, H_SEQ } from "./amqp-event-log.js";

/** A replay that has not reached its marker within this long fails (the broker is unwell). */
const REPLAY_TIMEOUT_MS = 120_000;
const PREFETCH = 500;

export class StreamReplay {
  private reader?: Channel;
  private writer?: ConfirmChannel;

  constructor(
    private readonly link: AmqpEventLink,
    private readonly names: AmqpEventNames,
    private readonly pattern: string,
    private readonly queue: string,
  ) {}

  /** Copies the matching events from `from` up to a new marker; resolves with the marker's offset. */
  async copy(from: EventStart): Promise<number> {
    const deadline = Date.now() + this.link.publishTimeoutMs;
    this.writer ??= await this.link.connection.channel(true, deadline);
    await this.reader?.close().catch(() => {});
    const reader = await this.link.connection.channel(false, deadline);
    this.reader = reader;
    const writer = this.writer;
    const marker = randomUUID();
    // From a time: read from the start and skip what is older (a second of margin; the bus filters
    // exactly by the event's own time). RabbitMQ 3.10's timestamp offsets missed recent chunks here.
    const notBefore = typeof from === "object" && "time" in from ? from.time - 1000 : undefined;
    await new Promise<void>((resolve, reject) =>
      writer.sendToQueue(this.names.stream, Buffer.from(""), { headers: { [H_MARKER]: marker } }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await reader.prefetch(PREFETCH);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          fail(
            new TransportError(
              `The replay of "${this.pattern}" did not reach the present within ${REPLAY_TIMEOUT_MS} ms.`,
            ),
          ),
        REPLAY_TIMEOUT_MS,
      );
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      reader.on("close", () =>
        fail(new TransportError("The replay's channel closed before it reached the present.")),
      );
      const onMessage = (m: ConsumeMessage | null) => {
        if (m === null) return fail(new TransportError("The stream queue was deleted during a replay."));
        const offset = Number(m.properties.headers?.["x-stream-offset"] ?? -1);
        const headers = m.properties.headers ?? {};
        if (headers[H_MARKER] !== undefined) {
          reader.ack(m);
          if (headers[H_MARKER] !== marker) return;
          clearTimeout(timer);
          writer.waitForConfirms().then(() => resolve(offset), reject);
          return;
        }
        const type = String(m.properties.type ?? "");
        const early = notBefore !== undefined && Number(m.properties.timestamp ?? 0) < notBefore;
        if (type !== "" && !early && patternMatches(this.pattern, type)) {
          writer.sendToQueue(this.queue, m.content, {
            persistent: true,
            type,
            messageId: m.properties.messageId,
            headers: { [H_SEQ]: offset },
          });
        }
        reader.ack(m);
      };
      reader
        .consume(this.names.stream, onMessage, {
          noAck: false,
          arguments: { "x-stream-offset": streamOffset(from) },
        })
        .catch(fail);
    });
  }

  async close(): Promise<void> {
    await this.reader?.close().catch(() => {});
    await this.writer?.close().catch(() => {});
  }
}

function streamOffset(from: EventStart): unknown {
  if (from === "new") return "next";
  if (typeof from === "object" && "sequence" in from) return from.sequence;
  return "first";
}
