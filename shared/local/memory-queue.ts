/** Queue inside one process: ready messages in order, delayed ones held until they are due. */
import type { Queue } from '../jobs/index.js';

export class MemoryQueue<M> implements Queue<M> {
  private readonly ready: M[] = [];
  private readonly delayed: { message: M; dueAt: number }[] = [];
  /** Messages ever sent, for the run's figures. */
  sent = 0;

  constructor(private readonly clock: () => number = Date.now) {}

  async send(messages: M[], options: { delaySeconds?: number } = {}): Promise<void> {
    this.sent += messages.length;
    if (!options.delaySeconds) this.ready.push(...messages);
    else for (const message of messages) this.delayed.push({ message, dueAt: this.clock() + options.delaySeconds * 1000 });
  }

  /** The next message due now, if any. */
  take(): M | undefined {
    const now = this.clock();
    for (let i = this.delayed.length - 1; i >= 0; i--) {
      if (this.delayed[i]!.dueAt <= now) this.ready.push(this.delayed.splice(i, 1)[0]!.message);
    }
    return this.ready.shift();
  }

  /** Every message left, ready or delayed, taken away (a process handing back its work). */
  drain(): M[] {
    const left = [...this.ready, ...this.delayed.map((entry) => entry.message)];
    this.ready.length = 0;
    this.delayed.length = 0;
    return left;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  /** Messages waiting for their delay (scheduled retries). */
  get delayedCount(): number {
    return this.delayed.length;
  }
}
