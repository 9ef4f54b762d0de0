/** Small helpers for writing SVG by hand. */

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A number for an SVG attribute: at most 2 decimals, no trailing zeros. */
export const n = (x: number): string => String(Math.round(x * 100) / 100);

/** Attributes `k="v"`, escaped; undefined values left out. */
export function attrs(a: Record<string, string | number | undefined>): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}="${typeof v === 'number' ? n(v) : escapeXml(v!)}"`)
    .join(' ');
}

/** `<text ...>content</text>`, content escaped. */
export function text(x: number, y: number, content: string, a: Record<string, string | number | undefined> = {}): string {
  return `<text ${attrs({ x, y, ...a })}>${escapeXml(content)}</text>`;
}

/** The opening of a standalone SVG document with width, height and viewBox set. */
export function svgOpen(width: number, height: number, title: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" ${attrs({ width, height, viewBox: `0 0 ${n(width)} ${n(height)}` })} font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect ${attrs({ x: 0, y: 0, width, height, fill: '#ffffff' })}/>`,
  ].join('\n');
}

/**
 * Evenly spaced round tick values from 0 up to `max` (units of `max`), about `count` of them,
 * the step 1, 2, 2.5 or 5 times a power of ten. With `cover`, one more tick is added when
 * needed so that the last tick is at least `max` (for an axis that must hold every value).
 */
export function niceTicks(max: number, count = 8, cover = false): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-9))!;
  const ticks: number[] = [];
  for (let i = 0; i * step <= max * (1 + 1e-9); i++) ticks.push(Number((i * step).toPrecision(12)));
  if (cover && ticks[ticks.length - 1]! < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

/** `#rrggbb` mixed with white: `amount` 0 keeps the colour, 1 is white. */
export function tint(hex: string, amount: number): string {
  const v = parseInt(hex.slice(1), 16);
  const mix = (c: number) => Math.round(c + (255 - c) * amount);
  const [r, g, b] = [mix((v >> 16) & 255), mix((v >> 8) & 255), mix(v & 255)];
  return `#${((r << 16) | (g << 8) | b).toString(16).padStart(6, '0')}`;
}

/** Whether dark text reads better than white on `hex` (relative luminance above about 0.4). */
export function wantsDarkText(hex: string): boolean {
  const v = parseInt(hex.slice(1), 16);
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * lin((v >> 16) & 255) + 0.7152 * lin((v >> 8) & 255) + 0.0722 * lin(v & 255);
  return l > 0.4;
}
