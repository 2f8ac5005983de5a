import type { Collective } from '../../lib/index.js';
import type { RankResult } from './rank-job.mjs';

export interface GroupResult {
  rank: number;
  results: RankResult[];
  ticks: number;
  sum: number[];
  errors: { lengths: string | null; ops: string | null; invalid: string | null };
  after: number[];
}

export function runGroupJob(pkg: unknown, collective: Collective): Promise<GroupResult>;
