import { CONTROL, SLOT_HEADER_WORDS, STATUS, STATUS_WORDS, type ChannelLayout } from "./fabric.js";
import { bump, type Status, type Waiter } from "./sync.js";
import type { Traffic } from "./traffic.js";

/**
 * Point-to-point messages over mailboxes: a channel from one rank to another has a few slots, each with
 * a header [state, tag, length, sequence] and room for one message. A send fills a free slot (waiting
 * while all are full) and rings the receiver's doorbell; a receive takes the oldest slot with the tag it
 * wants (waiting on its own doorbell) and rings the sender's. Tags let pipeline stages receive in their
 * own order whatever order the messages were sent in.
 */
const EMPTY = 0;
const FULL = 1;
const H = { state: 0, tag: 1, length: 2, sequence: 3 } as const;

function doorbell(rank: number): number {
  return CONTROL.statusBase + rank * STATUS_WORDS + STATUS.doorbell;
}

export interface Message {
  readonly tag: number;
  readonly data: Float32Array;
}

export class Channel {
  readonly from: number;
  readonly to: number;
  private readonly words: Int32Array;
  private readonly floats: Float32Array;
  private sent = 0;

  constructor(
    memory: WebAssembly.Memory,
    private readonly layout: ChannelLayout,
    readonly index: number,
    private readonly waiter: Waiter,
    private readonly status: Status,
    private readonly traffic: Traffic,
  ) {
    this.from = layout.spec.from;
    this.to = layout.spec.to;
    this.words = new Int32Array(memory.buffer);
    this.floats = new Float32Array(memory.buffer);
  }

  private header(slot: number, field: number): number {
    return this.layout.headerByte / 4 + slot * SLOT_HEADER_WORDS + field;
  }

  private data(slot: number): number {
    return (this.layout.dataByte + slot * this.layout.slotBytes) / 4;
  }

  private name(): string {
    return `${this.layout.spec.kind} channel ${this.from}->${this.to}`;
  }

  private freeSlot(): number {
    for (let s = 0; s < this.layout.spec.slots; s++) if (Atomics.load(this.words, this.header(s, H.state)) === EMPTY) return s;
    return -1;
  }

  /** The oldest full slot whose tag passes `accept`, or -1. */
  findSlot(accept: (tag: number) => boolean): number {
    let best = -1;
    let bestSeq = Infinity;
    for (let s = 0; s < this.layout.spec.slots; s++) {
      if (Atomics.load(this.words, this.header(s, H.state)) !== FULL) continue;
      const seq = this.words[this.header(s, H.sequence)]!;
      if (seq < bestSeq && accept(this.words[this.header(s, H.tag)]!)) {
        best = s;
        bestSeq = seq;
      }
    }
    return best;
  }

  send(tag: number, data: Float32Array, purpose: string): void {
    if (data.length > this.layout.spec.capacityFloats) {
      throw new Error(`internal: ${this.name()} message of ${data.length} floats exceeds ${this.layout.spec.capacityFloats}`);
    }
    this.status.set("send", this.index);
    this.waiter.takeIdleMs();
    const t0 = performance.now();
    let slot = this.freeSlot();
    if (slot < 0) {
      this.waiter.until(doorbell(this.from), () => (slot = this.freeSlot()) >= 0,
        () => `send (${this.name()}, tag ${tag})`, () => `waiting for rank ${this.to} to take a message`);
    }
    this.floats.set(data, this.data(slot));
    this.words[this.header(slot, H.tag)] = tag;
    this.words[this.header(slot, H.length)] = data.length;
    this.words[this.header(slot, H.sequence)] = this.sent++;
    Atomics.store(this.words, this.header(slot, H.state), FULL);
    bump(this.words, doorbell(this.to));
    this.traffic.record(this.layout.spec.kind, purpose, 4 * data.length, (performance.now() - t0) / 1e3, this.waiter.takeIdleMs() / 1e3);
  }

  /** Copies out slot `slot` and frees it. */
  take(slot: number): Message {
    const at = this.data(slot);
    const length = this.words[this.header(slot, H.length)]!;
    const message = { tag: this.words[this.header(slot, H.tag)]!, data: this.floats.slice(at, at + length) };
    Atomics.store(this.words, this.header(slot, H.state), EMPTY);
    bump(this.words, doorbell(this.from));
    return message;
  }

  recv(tag: number, purpose: string): Float32Array {
    this.status.set("recv", this.index);
    this.waiter.takeIdleMs();
    const t0 = performance.now();
    let slot = -1;
    this.waiter.until(doorbell(this.to), () => (slot = this.findSlot((t) => t === tag)) >= 0,
      () => `recv (${this.name()}, tag ${tag})`, () => `waiting for rank ${this.from} to send`);
    const m = this.take(slot);
    this.traffic.record(this.layout.spec.kind, purpose, 0, (performance.now() - t0) / 1e3, this.waiter.takeIdleMs() / 1e3);
    return m.data;
  }
}

/** The first message (lowest channel index first) from any of `channels` into `rank`, waiting if none. */
export function recvAny(channels: readonly Channel[], rank: number, waiter: Waiter, status: Status): { channel: Channel; message: Message } {
  status.set("recv", -1);
  let found: { channel: Channel; slot: number } | undefined;
  waiter.until(doorbell(rank), () => {
    for (const channel of channels) {
      const slot = channel.findSlot(() => true);
      if (slot >= 0) {
        found = { channel, slot };
        return true;
      }
    }
    return false;
  }, () => `recv (from any of ranks ${channels.map((c) => c.from).join(", ")})`, () => "waiting for a message");
  return { channel: found!.channel, message: found!.channel.take(found!.slot) };
}
