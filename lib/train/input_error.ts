/**
 * The error class for bad user input found after the flags were parsed (a bad data file, a base
 * folder that is not a model, a run folder that is not new, settings the model cannot take): the
 * CLI prints its one-line message and exits with status 2, as for a bad flag.
 *
 * @module
 */

/** A failure caused by the user's input (bad data, bad base folder, bad --out): exit code 2. */
export class InputError extends Error {
  /** Process exit status. */
  readonly exitCode = 2;
  /** Creates the error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}
