import type { Kit } from '../kit';

/**
 * One check of the kit: independent of the others (it plans and loads its own run when it needs
 * one), so a failure of one never fails or skips another. It returns what it saw, or throws
 * CheckFailure (the worker is wrong) or CheckSkipped (something outside the worker is missing).
 */
export interface Check {
  id: string;
  title: string;
  /** 'peer': needs the kit's reference peer; 'numbers': compares numbers (skipped for a modeled device). */
  needs?: readonly ('peer' | 'numbers')[];
  run(kit: Kit): Promise<string>;
}
