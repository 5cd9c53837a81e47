/** A run's deadline: once a look at the clock finds it passed, it stays passed. */
export class Deadline {
  private reached = false;

  /** `at`: epoch ms; undefined: the run has no deadline (the CLI). */
  constructor(private readonly at: number | undefined) {}

  /** Whether the run has a deadline at all. */
  get set(): boolean {
    return this.at !== undefined;
  }

  readonly passed = (): boolean => (this.reached ||= this.at !== undefined && Date.now() >= this.at);

  /** Ms until it, for work sized to end near it. */
  readonly msLeft = (): number => (this.at === undefined ? Infinity : this.at - Date.now());

  /** Whether a look found it passed, without looking again. */
  get wasPassed(): boolean {
    return this.reached;
  }
}
