/**
 * Optimizers, schedules, clipping and gradient accumulation.
 *
 * @module
 */

export * from "./optimizers.ts";
export * from "./schedule.ts";
