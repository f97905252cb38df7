// A set-up step: a name, a check that says whether it is already done, and the work.
// The runner prints progress and how long each step took.
import type { InfraConfig } from '../config.js';

export interface StepContext {
  cfg: InfraConfig;
  progress(msg: string): void;
}

export interface Step {
  name: string;
  /** A short description of the current state when the step is already done, else undefined. */
  done(ctx: StepContext): Promise<string | undefined>;
  apply(ctx: StepContext): Promise<string>;
}
