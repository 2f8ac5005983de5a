export function splits(n: number, ranks: number): Array<{ name: string; sizes: number[] }>;
export function values(count: number, seed: number, offset?: number): number[];
export function slice(data: ArrayLike<number>, shape: readonly number[], from: number, to: number): number[];
export function worst(a: ArrayLike<number>, b: ArrayLike<number>): number;
export function casesFor(ranks: number): Array<import('./rank-job.mjs').Case & { name: string }>;
