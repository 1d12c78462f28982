// The Prometheus text exposition format (version 0.0.4), written by hand because the node server's
// samples carry their own timestamps, as the kubelet's and cAdvisor's do, and prom-client cannot
// write those.

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge';

interface Series {
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

interface Family {
  type: MetricType;
  help: string;
  series: Series[];
}

/**
 * Collects metric families and renders them: families sorted by name (as client_golang does), each
 * with its HELP and TYPE lines, label names sorted within a series, families without series left out.
 */
export class MetricsText {
  private readonly families = new Map<string, Family>();

  /** Declares a family; the returned function adds one series to it. */
  family(name: string, type: MetricType, help: string): (labels: Record<string, string>, value: number, timestampMs?: number) => void {
    const family: Family = { type, help, series: [] };
    this.families.set(name, family);
    return (labels, value, timestampMs) => void family.series.push({ labels, value, timestampMs });
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, family] of [...this.families].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (family.series.length === 0) continue;
      lines.push(`# HELP ${name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${family.type}`);
      for (const s of family.series) {
        const labels = Object.keys(s.labels)
          .sort()
          .map((key) => `${key}="${escapeLabelValue(s.labels[key]!)}"`)
          .join(',');
        const stamp = s.timestampMs === undefined ? '' : ` ${Math.floor(s.timestampMs)}`;
        lines.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}${stamp}`);
      }
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
