// Progress display for the CLI: bars on stderr, only when stderr is a terminal (never in pipes,
// logs or --json runs), so stdout stays clean for the answer or the JSON.
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, total?: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

// The bar's numbers: with `bytes`, the value and the total in KiB, MiB or GiB.
export function formatBarValue(value: number | string, type: string, bytes: boolean): string {
  return bytes && (type === 'value' || type === 'total') ? formatBytes(Number(value)) : String(value);
}

// `unit` and `extra` may name payload fields ({stage}); `payload` gives their first values.
// `bytes`: value and total are byte counts, shown in KiB, MiB or GiB.
export function progressBar(
  label: string,
  total: number,
  options: { enabled: boolean; unit?: string; extra?: string; bytes?: boolean; payload?: Record<string, string | number> },
): Progress {
  if (!options.enabled || !process.stderr.isTTY) return NONE;
  const bytes = options.bytes === true;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} ${options.unit ?? ''}${options.extra ?? ''}`.trimEnd(),
      formatValue: (value: number | string, _options: unknown, type: string) => formatBarValue(value, type, bytes),
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  // The bar appears with the first update, when the total is known: nothing is drawn (and so
  // nothing cleared) for work that reports no progress.
  let state: 'waiting' | 'running' | 'stopped' = 'waiting';
  return {
    update(value, newTotal, payload) {
      if (state === 'stopped') return;
      if (state === 'waiting') {
        bar.start(newTotal ?? total, value, { ...options.payload, ...payload });
        state = 'running';
        return;
      }
      if (newTotal !== undefined) bar.setTotal(newTotal);
      bar.update(value, payload ?? {});
    },
    stop() {
      if (state === 'running') bar.stop();
      state = 'stopped';
    },
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}
