/** Flag parsers shared by every `moe` command: each names the flag and the value it refused. */
import { InvalidArgumentError } from 'commander';

/** An integer >= `min` (and <= `max` when given: every count a user types has a bound). */
export const integer = (flag: string, min = 0, max = Number.POSITIVE_INFINITY) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}, got "${value}"`);
  if (n > max) throw new InvalidArgumentError(`${flag} must be at most ${max}, got "${value}"`);
  return n;
};

/** A finite number >= 0. */
export const nonNegativeNumber = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative number, got "${value}"`);
  return n;
};

/** A finite number > 0. */
export const positiveNumber = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number, got "${value}"`);
  return n;
};

/** A comma-separated list of positive numbers (integers when `int`). */
export const numberList = (flag: string, int: boolean) => (value: string) => {
  const list = value.split(',').map((v) => Number(v.trim()));
  if (list.some((n) => !Number.isFinite(n) || n <= 0 || (int && !Number.isInteger(n)))) {
    throw new InvalidArgumentError(`${flag} must be a comma-separated list of positive ${int ? 'integers' : 'numbers'}, got "${value}"`);
  }
  return list;
};

/** A JSON object. */
export const jsonObject = (flag: string) => (value: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`${flag} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError(`${flag} must be a JSON object`);
  return parsed as Record<string, unknown>;
};
