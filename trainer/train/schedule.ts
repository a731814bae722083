// Learning-rate schedules: pure functions of the step.

export type ScheduleKind = 'constant' | 'cosine';

export interface Schedule {
  kind: ScheduleKind;
  baseLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** The floor the cosine decays to. */
  minLr: number;
}

/** The learning rate of update number `step` (0-based). */
export function learningRate(s: Schedule, step: number): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.baseLr * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return s.baseLr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  return s.minLr + 0.5 * (s.baseLr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
