// Usage: requests, tokens, cost and errors over time by model (SVG bar charts drawn here,
// no library), latency and time to first token by model, top users and groups (admins),
// and where the caller's budgets stand. Everyone sees their own; admins see everyone's.

import { h, notify, replace } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const SERIES = 8;

/** An SVG element: attributes set as attributes, children appended (text as text nodes). */
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const RANGES = {
  day: { label: 'Last 24 hours', seconds: 86400, bucket: 'hour' },
  week: { label: 'Last 7 days', seconds: 7 * 86400, bucket: 'day' },
  month: { label: 'Last 30 days', seconds: 30 * 86400, bucket: 'day' },
  year: { label: 'Last 12 months', seconds: 365 * 86400, bucket: 'month' },
};

const METRICS = {
  requests: { label: 'Requests', whole: true, value: (row) => row.requests, format: (value) => Math.round(value).toLocaleString() },
  tokens: { label: 'Tokens', whole: true, value: (row) => row.inputTokens + row.outputTokens, format: compact },
  cost: { label: 'Cost', value: (row) => row.cost, format: (value) => formatCost(value) },
  errors: { label: 'Errors', whole: true, value: (row) => row.errors, format: (value) => Math.round(value).toLocaleString() },
};

/** A cost with its significant digits: `0.000012`, not `0.0000`; whole numbers from 100, two decimals from 1. */
export function formatCost(value) {
  if (!value || !Number.isFinite(value)) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 1) return value.toFixed(2);
  // Three significant digits below 1, trailing zeros dropped (never exponent notation).
  const decimals = Math.min(12, Math.floor(-Math.log10(magnitude)) + 3);
  return value.toFixed(decimals).replace(/0+$/, '').replace(/\.$/, '');
}

function compact(value) {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value));
}

function milliseconds(value) {
  if (value === undefined || value === null) return '–';
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;
}

function bucketLabel(seconds, bucket) {
  const date = new Date(seconds * 1000);
  if (bucket === 'hour') return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' });
  if (bucket === 'month') return date.toLocaleDateString([], { month: 'short', year: '2-digit', timeZone: 'UTC' });
  return date.toLocaleDateString([], { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/** Every bucket start between `from` and `to`, so empty buckets show as gaps. */
function bucketStarts(from, to, bucket) {
  const starts = [];
  const date = new Date(from * 1000);
  if (bucket === 'hour') date.setUTCMinutes(0, 0, 0);
  else date.setUTCHours(0, 0, 0, 0);
  if (bucket === 'month') date.setUTCDate(1);
  while (date.getTime() / 1000 < to && starts.length < 800) {
    starts.push(date.getTime() / 1000);
    if (bucket === 'hour') date.setUTCHours(date.getUTCHours() + 1);
    else if (bucket === 'day') date.setUTCDate(date.getUTCDate() + 1);
    else date.setUTCMonth(date.getUTCMonth() + 1);
  }
  return starts;
}

/**
 * A stacked bar chart: one bar per bucket, one colour per model. The numbers are also in a
 * visually hidden table for screen readers.
 */
function barChart({ starts, bucket, models, rows, metric, title }) {
  const width = 760;
  const height = 240;
  const left = 56;
  const bottom = 28;
  const right = 28;
  const plotWidth = width - left - right;
  const plotHeight = height - bottom - 12;
  const values = new Map();
  for (const row of rows) {
    const key = `${row.start}|${row.model}`;
    values.set(key, (values.get(key) ?? 0) + metric.value(row));
  }
  const totals = starts.map((start) => models.reduce((sum, model) => sum + (values.get(`${start}|${model}`) ?? 0), 0));
  const peak = Math.max(...totals, 0);
  // Four equal steps of a round size (whole numbers for counts), so every tick is exact.
  const stepSize = Math.max(niceCeiling(peak / 4 || 1, metric.whole ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]), metric.whole ? 1 : 0);
  const top = stepSize * 4;
  const step = plotWidth / Math.max(starts.length, 1);
  const barWidth = Math.max(Math.min(step * 0.7, 40), 1);
  const chart = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${metric.label.toLowerCase()} per ${bucket} by model` });
  for (let tick = 0; tick <= 4; tick += 1) {
    const y = 12 + plotHeight - (plotHeight * tick) / 4;
    chart.append(s('line', { x1: left, x2: width - right, y1: y, y2: y, class: 'grid' }),
      s('text', { x: left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, metric.format((top * tick) / 4)));
  }
  const labelEvery = Math.ceil(starts.length / 8);
  starts.forEach((start, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    let y = 12 + plotHeight;
    models.forEach((model, series) => {
      const value = values.get(`${start}|${model}`) ?? 0;
      if (value <= 0) return;
      const barHeight = (value / top) * plotHeight;
      y -= barHeight;
      chart.append(s('rect', { x, y, width: barWidth, height: Math.max(barHeight, 0.5), class: `bar series-${series % SERIES}` },
        s('title', {}, `${bucketLabel(start, bucket)} · ${model}: ${metric.format(value)}`)));
    });
    if (index % labelEvery === 0) {
      chart.append(s('text', { x: left + index * step + step / 2, y: height - 8, class: 'axis', 'text-anchor': 'middle' }, bucketLabel(start, bucket)));
    }
  });
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' },
    models.map((model, series) => h('li', {}, h('span', { class: `swatch series-${series % SERIES}` }), model)));
  const table = h('table', { class: 'sr-only' },
    h('caption', {}, `${title} by model`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Period'), models.map((model) => h('th', { scope: 'col' }, model)))),
    h('tbody', {}, starts.filter((_, index) => totals[index] > 0).map((start) => h('tr', {},
      h('th', { scope: 'row' }, bucketLabel(start, bucket)),
      models.map((model) => h('td', {}, metric.format(values.get(`${start}|${model}`) ?? 0)))))));
  return h('figure', { class: 'chart-figure' }, chart, legend, table);
}

function niceCeiling(value, factors) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const factor of factors) {
    if (value <= factor * magnitude) return factor * magnitude;
  }
  return 10 * magnitude;
}

export class UsageView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.range = 'week';
    this.metric = 'tokens';
  }

  mount(container) {
    this.container = container;
    const admin = this.app.me.isAdmin;
    const rangeSelect = h('select', { id: 'usage-range', onchange: (event) => { this.range = event.target.value; this.refresh(); } },
      Object.entries(RANGES).map(([key, range]) => h('option', { value: key, selected: key === this.range }, range.label)));
    const metricSelect = h('select', { id: 'usage-metric', onchange: (event) => { this.metric = event.target.value; this.draw(); } },
      Object.entries(METRICS).map(([key, metric]) => h('option', { value: key, selected: key === this.metric }, metric.label)));
    this.summary = h('div', { class: 'stats', id: 'usage-summary' });
    this.chart = h('div', { id: 'usage-chart' });
    this.latency = h('div', { class: 'table-wrap' });
    this.people = h('div', {});
    this.budgets = h('div', {});
    replace(container, h('div', { class: 'page' },
      h('div', { class: 'page-header' },
        h('h1', {}, admin ? 'Usage' : 'Your usage'),
        h('div', { class: 'row controls' },
          h('div', { class: 'field' }, h('label', { for: 'usage-range' }, 'Period'), rangeSelect),
          h('div', { class: 'field' }, h('label', { for: 'usage-metric' }, 'Chart'), metricSelect))),
      h('p', { class: 'hint' }, admin ? 'Every user\'s calls, by model. Times in UTC.' : 'Your calls, by model. Times in UTC.'),
      this.summary,
      h('section', { class: 'card', 'aria-labelledby': 'usage-chart-title' }, h('h2', { id: 'usage-chart-title' }, 'Over time'), this.chart),
      this.budgets,
      h('section', { class: 'card', 'aria-labelledby': 'usage-latency-title' }, h('h2', { id: 'usage-latency-title' }, 'Latency by model'), this.latency),
      this.people));
    this.refresh();
  }

  async refresh() {
    const range = RANGES[this.range];
    const to = Math.ceil(Date.now() / 1000);
    const from = to - range.seconds;
    const query = `from=${from}&to=${to}`;
    try {
      const requests = [
        this.api.get(`/usage?${query}&bucket=${range.bucket}&groupBy=model`),
        this.api.get('/budgets'),
      ];
      if (this.app.me.isAdmin) {
        requests.push(this.api.get(`/usage?${query}&bucket=none&groupBy=user`), this.api.get(`/usage?${query}&bucket=none&groupBy=group`));
      }
      const [series, budgets, users, groups] = await Promise.all(requests);
      this.report = series;
      this.draw();
      this.drawBudgets(budgets.data);
      this.drawPeople(users, groups);
    } catch (error) {
      if (error.status !== 401) notify(`Usage could not be loaded: ${error.message}`);
    }
  }

  draw() {
    const report = this.report;
    if (!report) return;
    const totals = report.totals;
    const estimated = totals.estimatedRequests ? ` (${totals.estimatedRequests} estimated)` : '';
    const errorRate = totals.requests ? (100 * totals.errors) / totals.requests : 0;
    replace(this.summary,
      stat('Requests', totals.requests.toLocaleString()),
      stat('Tokens in / out', `${compact(totals.inputTokens)} / ${compact(totals.outputTokens)}`, estimated),
      stat('Cost', METRICS.cost.format(totals.cost), totals.hostedCost ? `${METRICS.cost.format(totals.hostedCost)} hosted` : ''),
      stat('Error rate', `${errorRate.toFixed(errorRate && errorRate < 1 ? 2 : 0)} %`, `${totals.errors} errors`));
    const models = [...new Set(report.data.map((row) => row.model))].sort();
    if (!report.data.length) {
      replace(this.chart, h('p', { class: 'empty' }, 'No calls in this period.'));
    } else {
      replace(this.chart, barChart({
        starts: bucketStarts(report.from, report.to, report.bucket), bucket: report.bucket, models, rows: report.data,
        metric: METRICS[this.metric], title: METRICS[this.metric].label,
      }));
    }
    replace(this.latency, report.latency.length
      ? h('table', { class: 'data', id: 'latency-table' },
        h('thead', {}, h('tr', {}, ['Model', 'Requests', 'Errors', 'p50', 'p99', 'First token p50', 'First token p99']
          .map((title) => h('th', { scope: 'col' }, title)))),
        h('tbody', {}, report.latency.map((entry) => h('tr', { 'data-model': entry.model },
          h('th', { scope: 'row' }, entry.model), h('td', {}, entry.requests.toLocaleString()),
          h('td', {}, entry.requests ? `${((100 * entry.errors) / entry.requests).toFixed(1)} %` : '–'),
          h('td', {}, milliseconds(entry.p50Ms)), h('td', {}, milliseconds(entry.p99Ms)),
          h('td', {}, milliseconds(entry.timeToFirstTokenP50Ms)), h('td', {}, milliseconds(entry.timeToFirstTokenP99Ms))))))
      : h('p', { class: 'empty' }, 'No calls in this period.'));
  }

  drawBudgets(budgets) {
    if (!budgets.length) {
      replace(this.budgets);
      return;
    }
    replace(this.budgets, h('section', { class: 'card', 'aria-labelledby': 'usage-budgets-title' },
      h('h2', { id: 'usage-budgets-title' }, this.app.me.isAdmin ? 'Your budgets' : 'Budgets'),
      h('ul', { class: 'budgets', id: 'budgets' }, budgets.map((budget) => {
        const used = budget.spent + budget.reserved;
        const share = budget.limit > 0 ? Math.min(used / budget.limit, 1) : 1;
        const number = budget.metric === 'tokens' ? (value) => Math.round(value).toLocaleString() : METRICS.cost.format;
        const resets = new Date(budget.resetsAt * 1000).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
        return h('li', { class: share >= 1 ? 'spent' : share >= 0.8 ? 'near' : '' },
          h('div', { class: 'budget-line' },
            h('strong', {}, `${budget.scope === 'token' ? 'Token' : budget.scope === 'group' ? `Group ${budget.subject}` : 'You'}: ${budget.metric} per ${budget.period}`),
            h('span', {}, `${number(budget.spent)} of ${number(budget.limit)}${budget.reserved ? ` (+${number(budget.reserved)} in flight)` : ''} · resets ${resets}`)),
          h('progress', { max: '1', value: String(share), 'aria-label': `${budget.metric} budget used` }));
      }))));
  }

  drawPeople(users, groups) {
    if (!users) {
      replace(this.people);
      return;
    }
    const ranked = (report, key) => [...report.data].sort((a, b) => b.cost - a.cost || (b.inputTokens + b.outputTokens) - (a.inputTokens + a.outputTokens)).slice(0, 20)
      .map((row) => h('tr', {}, h('th', { scope: 'row' }, row[key] ?? '–'), h('td', {}, row.requests.toLocaleString()),
        h('td', {}, compact(row.inputTokens + row.outputTokens)), h('td', {}, METRICS.cost.format(row.cost)),
        h('td', {}, row.requests ? `${((100 * row.errors) / row.requests).toFixed(1)} %` : '–')));
    const table = (id, title, key, report) => h('section', { class: 'card', 'aria-labelledby': `${id}-title` },
      h('h2', { id: `${id}-title` }, title),
      report.data.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'data', id },
        h('thead', {}, h('tr', {}, [key === 'user' ? 'User' : 'Group', 'Requests', 'Tokens', 'Cost', 'Errors'].map((name) => h('th', { scope: 'col' }, name)))),
        h('tbody', {}, ranked(report, key)))) : h('p', { class: 'empty' }, 'No calls in this period.'));
    replace(this.people, h('div', { class: 'two-columns' }, table('top-users', 'Top users', 'user', users), table('top-groups', 'Groups', 'group', groups)));
  }
}

function stat(label, value, detail = '') {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value),
    detail ? h('div', { class: 'stat-detail' }, detail) : null);
}
