/** The demo's progress display: bars on a terminal, a line per finished training run elsewhere. */
import cliProgress from 'cli-progress';
import type { ProgressSink } from './experiments.js';
import { pct } from './format.js';

/** cli-progress bars on a terminal, one line per finished run elsewhere. */
export function makeProgress(enabled: boolean, log: ((line: string) => void) | null): { sink: ProgressSink; stop(): void } {
  if (enabled) {
    const multi = new cliProgress.MultiBar(
      {
        format: ' {label} |{bar}| {percentage}% | epoch {epoch} | loss {loss} | {status}',
        barsize: 28,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
        fps: 8,
        stream: process.stdout,
      },
      cliProgress.Presets.shades_classic,
    );
    // Training is synchronous, so cli-progress's redraw timer never fires during a run: redraw from here.
    let lastDraw = 0;
    const draw = (force: boolean): void => {
      const now = performance.now();
      if (force || now - lastDraw > 100) {
        lastDraw = now;
        multi.update();
      }
    };
    return {
      sink: {
        start(label, total) {
          const bar = multi.create(total, 0, { label: label.padEnd(30), epoch: 1, loss: '  …  ', status: '' });
          const start = performance.now();
          return {
            update(step, info) {
              const eta = ((performance.now() - start) / step) * (total - step);
              bar.update(step, { epoch: info.epoch, loss: info.loss.toFixed(3).padStart(5), status: `ETA ${(eta / 1000).toFixed(1)} s` });
              draw(false);
            },
            done(info) {
              bar.update(info.diverged ? Math.round(bar.getProgress() * total) : total, {
                status: `test ${pct(info.accuracy)}${info.diverged ? ' (diverged)' : ''} in ${(info.ms / 1000).toFixed(1)} s`,
              });
              draw(true);
            },
          };
        },
      },
      stop: () => multi.stop(),
    };
  }
  return {
    sink: {
      start(label) {
        return {
          update() {},
          done(info) {
            log?.(`  ${label.padEnd(30)} test ${pct(info.accuracy)}${info.diverged ? ' (diverged)' : ''} in ${(info.ms / 1000).toFixed(1)} s`);
          },
        };
      },
    },
    stop() {},
  };
}
