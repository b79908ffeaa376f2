// Progress display for the CLI: bars on stderr, only when stderr is a terminal (never in pipes,
// logs or --json runs), so stdout stays clean for the answer or the JSON.
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, total?: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

// `unit` and `extra` may name payload fields ({stage}); `payload` gives their first values.
export function progressBar(
  label: string,
  total: number,
  options: { enabled: boolean; unit?: string; extra?: string; payload?: Record<string, string | number> },
): Progress {
  if (!options.enabled || !process.stderr.isTTY) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} ${options.unit ?? ''}${options.extra ?? ''}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, options.payload ?? {});
  let stopped = false;
  return {
    update(value, newTotal, payload) {
      if (stopped) return;
      if (newTotal !== undefined) bar.setTotal(newTotal);
      bar.update(value, payload ?? {});
    },
    stop() {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}
