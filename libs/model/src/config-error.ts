/** One broken rule of a config: the field path (e.g. `model.topK`), the rule's name, the message. */
export interface ConfigProblem {
  readonly field: string;
  readonly rule: string;
  readonly message: string;
}

/**
 * A config that cannot work. The message lists every problem found (not just the first), each
 * naming the field path and the numbers; `field` and `rule` are those of the first problem.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly field: string;
  readonly rule: string;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    if (problems.length === 0) throw new Error('ConfigError needs at least one problem');
    super(
      problems.length === 1
        ? problems[0]!.message
        : `${problems.length} config problems: ${problems.map((p) => p.message).join('; ')}`,
    );
    this.field = problems[0]!.field;
    this.rule = problems[0]!.rule;
    this.problems = problems;
  }
}
