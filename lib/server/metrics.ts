// The server's Prometheus metrics: requests by endpoint and outcome, queue depth and running
// requests per model, generated tokens and images (totals and per-second rates over a sliding
// window), and latency histograms (time in queue, time to the whole reply).

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const RATE_WINDOW_S = 60;

function labels(values: Record<string, string>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Histogram {
  private readonly series = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>();

  observe(values: Record<string, string>, seconds: number): void {
    const key = labels(values);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: values, counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) (s as { counts: number[] }).counts[i] = ((s as { counts: number[] }).counts[i] ?? 0) + 1;
    });
    s.sum += seconds;
    s.count += 1;
  }

  render(name: string, help: string): string[] {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    for (const s of this.series.values()) {
      LATENCY_BUCKETS.forEach((b, i) => out.push(`${name}_bucket${labels({ ...s.labels, le: String(b) })} ${s.counts[i] ?? 0}`));
      out.push(`${name}_bucket${labels({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${name}_sum${labels(s.labels)} ${s.sum}`);
      out.push(`${name}_count${labels(s.labels)} ${s.count}`);
    }
    return out;
  }
}

// Events of the last RATE_WINDOW_S seconds, for a per-second rate.
class Rate {
  private readonly events: Array<{ at: number; n: number }> = [];
  total = 0;

  add(n: number, now = Date.now()): void {
    this.total += n;
    this.events.push({ at: now, n });
    this.trim(now);
  }

  perSecond(now = Date.now()): number {
    this.trim(now);
    return this.events.reduce((a, e) => a + e.n, 0) / RATE_WINDOW_S;
  }

  private trim(now: number): void {
    while (this.events.length > 0 && (this.events[0] as { at: number }).at < now - RATE_WINDOW_S * 1000) this.events.shift();
  }
}

export type Outcome = 'ok' | 'client_error' | 'rejected' | 'timeout' | 'cancelled' | 'error' | 'unavailable';

export interface QueueGauge {
  model: string;
  waiting: number;
  running: number;
}

export class Metrics {
  private readonly requests = new Map<string, { endpoint: string; outcome: Outcome; n: number }>();
  private readonly latency = new Histogram();
  private readonly queueWait = new Histogram();
  private readonly tokens = new Map<string, Rate>();
  private readonly images = new Map<string, Rate>();

  request(endpoint: string, outcome: Outcome, seconds: number): void {
    const key = `${endpoint} ${outcome}`;
    const entry = this.requests.get(key) ?? { endpoint, outcome, n: 0 };
    entry.n += 1;
    this.requests.set(key, entry);
    this.latency.observe({ endpoint, outcome }, seconds);
  }

  queued(model: string, seconds: number): void {
    this.queueWait.observe({ model }, seconds);
  }

  generated(model: string, tokens: number, images: number): void {
    if (tokens > 0) this.rate(this.tokens, model).add(tokens);
    if (images > 0) this.rate(this.images, model).add(images);
  }

  private rate(map: Map<string, Rate>, model: string): Rate {
    let r = map.get(model);
    if (!r) {
      r = new Rate();
      map.set(model, r);
    }
    return r;
  }

  render(queues: readonly QueueGauge[]): string {
    const out: string[] = [];
    out.push('# HELP vargpt_queue_depth Requests waiting for their model', '# TYPE vargpt_queue_depth gauge');
    for (const q of queues) out.push(`vargpt_queue_depth${labels({ model: q.model })} ${q.waiting}`);
    out.push('# HELP vargpt_requests_running Requests running on their model', '# TYPE vargpt_requests_running gauge');
    for (const q of queues) out.push(`vargpt_requests_running${labels({ model: q.model })} ${q.running}`);
    out.push('# HELP vargpt_requests_total Requests answered, by endpoint and outcome', '# TYPE vargpt_requests_total counter');
    for (const r of this.requests.values()) out.push(`vargpt_requests_total${labels({ endpoint: r.endpoint, outcome: r.outcome })} ${r.n}`);
    const models = queues.map((q) => q.model);
    out.push('# HELP vargpt_generated_tokens_total New tokens generated', '# TYPE vargpt_generated_tokens_total counter');
    for (const m of models) out.push(`vargpt_generated_tokens_total${labels({ model: m })} ${this.tokens.get(m)?.total ?? 0}`);
    out.push(`# HELP vargpt_tokens_per_second New tokens per second over the last ${RATE_WINDOW_S} s`, '# TYPE vargpt_tokens_per_second gauge');
    for (const m of models) out.push(`vargpt_tokens_per_second${labels({ model: m })} ${this.tokens.get(m)?.perSecond() ?? 0}`);
    out.push('# HELP vargpt_generated_images_total Images drawn', '# TYPE vargpt_generated_images_total counter');
    for (const m of models) out.push(`vargpt_generated_images_total${labels({ model: m })} ${this.images.get(m)?.total ?? 0}`);
    out.push(`# HELP vargpt_images_per_second Images drawn per second over the last ${RATE_WINDOW_S} s`, '# TYPE vargpt_images_per_second gauge');
    for (const m of models) out.push(`vargpt_images_per_second${labels({ model: m })} ${this.images.get(m)?.perSecond() ?? 0}`);
    out.push(...this.latency.render('vargpt_request_duration_seconds', 'Time from the request to the end of its reply, by endpoint and outcome'));
    out.push(...this.queueWait.render('vargpt_queue_wait_seconds', 'Time a request waited for its model'));
    return `${out.join('\n')}\n`;
  }
}
