/**
 * A child process's output line as a person reads it: a pino JSON line becomes
 * "LEVEL msg (ErrClass)", anything else is returned as it is. For error messages that quote a
 * worker's last lines, and for echoing a worker's output.
 */
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

export function readableLine(line: string): string {
  if (!line.startsWith('{"level":')) return line;
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: unknown; errClass?: unknown };
    if (typeof entry.msg !== 'string') return line;
    const level = LEVEL_NAMES[entry.level ?? 30] ?? String(entry.level);
    return `${level} ${entry.msg}${typeof entry.errClass === 'string' ? ` (${entry.errClass})` : ''}`;
  } catch {
    return line;
  }
}
