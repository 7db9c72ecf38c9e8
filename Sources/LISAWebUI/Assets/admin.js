// Administration pages: models (live status and endpoint health, create, start/stop,
// delete) and API tokens (list, create with the secret shown once, revoke).

import { path } from './api.js';
import { ask, formatTime, h, notify, replace } from './dom.js';

const TRANSITIONAL = new Set(['Creating', 'Starting', 'Stopping', 'Updating', 'Deleting']);

/** "2 of 2 replicas ready (1–3)" for a hosted model. */
function replicaSummary(model) {
  const replicas = model.replicas ?? [];
  const ready = replicas.filter((replica) => replica.state === 'ready').length;
  const scaling = model.autoScalingConfig;
  const wanted = scaling?.desiredCapacity ?? scaling?.minCapacity ?? replicas.length;
  const bounds = scaling ? ` (${scaling.minCapacity}–${scaling.maxCapacity})` : '';
  const restarts = replicas.reduce((sum, replica) => sum + (replica.restarts ?? 0), 0);
  return `${ready} of ${wanted} replicas ready${bounds}${restarts ? ` · ${restarts} restarts` : ''}`;
}

/** What a page shows instead of itself when the server refuses the caller. */
function refused(container, title, error) {
  replace(container, h('div', { class: 'page' },
    h('h1', {}, title),
    h('div', { class: 'empty-state', role: 'alert' },
      h('h2', {}, error.status === 403 ? 'Administrator rights needed' : 'This page could not be loaded'),
      h('p', {}, error.message))));
}

export class ModelsView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.timer = null;
  }

  mount(container) {
    this.container = container;
    // Users may list the models they use (GET /models answers them), but this page manages models.
    if (!this.app.me.isAdmin) {
      refused(container, 'Models', { status: 403, message: 'Managing models needs an administrator.' });
      this.timer = 'stopped';
      return;
    }
    this.tbody = h('tbody');
    this.form = this.buildForm();
    this.page = h('div', { class: 'page' },
      h('div', { class: 'page-header' },
        h('h1', {}, 'Models'),
        h('button', {
          type: 'button', class: 'primary', id: 'add-model', 'aria-expanded': 'false',
          onclick: (event) => {
            this.form.hidden = !this.form.hidden;
            event.target.setAttribute('aria-expanded', String(!this.form.hidden));
            if (!this.form.hidden) this.form.querySelector('input').focus();
          },
        }, 'Add model')),
      this.form,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'data', id: 'models-table' },
          h('thead', {}, h('tr', {}, ['Model', 'Type', 'Status', 'Endpoints'].map((title) => h('th', { scope: 'col' }, title)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          this.tbody)));
    replace(container, h('p', { class: 'boot' }, 'Loading models…'));
    this.refresh(true);
  }

  unmount() {
    clearTimeout(this.timer);
    this.timer = 'stopped';
  }

  async refresh(first = false) {
    if (this.timer === 'stopped') return;
    try {
      const { models } = await this.api.get('/models');
      if (first) replace(this.container, this.page);
      this.render(models);
      const busy = models.some((model) => TRANSITIONAL.has(model.status));
      this.timer = setTimeout(() => this.refresh(), busy ? 1000 : 3000);
    } catch (error) {
      if (error.status === 401) return;
      if (first) { refused(this.container, 'Models', error); return; }
      notify(`Models could not be refreshed: ${error.message}`);
      this.timer = setTimeout(() => this.refresh(), 5000);
    }
  }

  render(models) {
    // Keep keyboard focus on the same control across refreshes.
    const focused = document.activeElement?.dataset?.action ? `${document.activeElement.dataset.model}|${document.activeElement.dataset.action}` : null;
    if (!models.length) {
      replace(this.tbody, h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'No models yet. Add one above, or declare models in the configuration file.')));
      return;
    }
    replace(this.tbody, models.map((model) => {
      const configured = model.source === 'configuration';
      const serving = model.status === 'InService';
      const stopped = model.status === 'Stopped' || model.status === 'Failed';
      const hosted = model.hostingType === 'lisa_hosted';
      return h('tr', { 'data-model': model.modelId },
        h('th', { scope: 'row' }, h('div', { class: 'model-id' }, model.modelId),
          model.modelName && model.modelName !== model.modelId ? h('div', { class: 'hint' }, model.modelName) : null),
        h('td', {}, model.modelType ?? 'textgen', model.hostingType === 'lisa_hosted' ? h('div', { class: 'hint' }, 'hosted') : null,
          h('div', { class: 'hint groups' }, (model.allowedGroups ?? []).length ? `groups: ${model.allowedGroups.join(', ')}` : 'everyone')),
        h('td', {},
          // The badge shows what a caller gets: an InService model no endpoint can serve is down.
          h('span', { class: `status status-${shownStatus(model).toLowerCase()}`, title: serving ? `InService, health: ${model.health}` : null },
            shownStatus(model)),
          model.statusReason ? h('div', { class: 'hint reason' }, model.statusReason) : null,
          // In service is not the same as answering: say when no endpoint (or not every one) can take requests.
          serving && ['down', 'degraded', 'unknown'].includes(model.health)
            ? h('div', { class: `hint health health-${model.health}` },
                { down: 'no endpoint can take requests', degraded: 'some endpoints are failing', unknown: 'no endpoint has answered yet' }[model.health])
            : null,
          hosted ? h('div', { class: 'hint replicas' }, replicaSummary(model)) : null),
        h('td', {}, model.endpointStatus.length
          ? h('ul', { class: 'endpoints' }, model.endpointStatus.map((endpoint) => {
            const unknown = endpoint.health === 'unknown' && endpoint.circuit === 'closed';
            const healthy = !unknown && endpoint.healthy && endpoint.circuit === 'closed';
            const state = unknown ? 'not answered yet' : healthy ? 'healthy' : endpoint.healthy ? `circuit ${endpoint.circuit.replace('_', '-')}` : 'unhealthy';
            return h('li', { class: unknown ? 'unknown' : healthy ? 'healthy' : 'unhealthy' },
              h('span', { class: 'dot', 'aria-hidden': 'true' }),
              h('span', { class: 'endpoint-url' }, endpoint.url),
              h('span', { class: 'hint' }, ` ${state} · ${endpoint.inFlight} in flight · ${Math.round(endpoint.ewmaLatencyMilliseconds)} ms`));
          }))
          : h('span', { class: 'hint' }, 'none')),
        h('td', {}, h('div', { class: 'actions' },
          configured ? h('span', { class: 'hint' }, 'from configuration') : [
            hosted && serving ? this.action(model, 'scale', 'Scale', () => this.scale(model)) : null,
            hosted ? this.action(model, 'logs', 'Logs', () => this.showLogs(model)) : null,
            serving ? this.action(model, 'stop', 'Stop', () => this.setEnabled(model, false)) : null,
            stopped ? this.action(model, 'start', 'Start', () => this.setEnabled(model, true)) : null,
            this.action(model, 'delete', 'Delete', () => this.remove(model), 'danger'),
          ])));
    }));
    if (focused) {
      const [model, action] = focused.split('|');
      this.tbody.querySelector(`[data-model="${CSS.escape(model)}"] [data-action="${action}"]`)?.focus();
    }
  }

  action(model, action, label, run, kind = 'secondary') {
    return h('button', { type: 'button', class: `${kind} small`, 'data-model': model.modelId, 'data-action': action, 'aria-label': `${label} ${model.modelId}`, onclick: run }, label);
  }

  async setEnabled(model, enabled) {
    try {
      await this.api.put(path`/models/${model.modelId}`, { enabled });
      notify(`${model.modelId}: ${enabled ? 'starting' : 'stopping'}.`, 'info');
    } catch (error) {
      notify(`${model.modelId} could not be ${enabled ? 'started' : 'stopped'}: ${error.message}`);
    }
    this.kick();
  }

  async scale(model) {
    const scaling = model.autoScalingConfig ?? {};
    const min = scaling.minCapacity ?? 1;
    const max = scaling.maxCapacity ?? 1;
    const answer = await ask({
      title: `Scale ${model.modelId}`, confirm: 'Scale',
      body: `Replicas wanted now, between ${min} and ${max}. The autoscaler may change it later.`,
      input: { value: String(scaling.desiredCapacity ?? min), label: 'Desired replicas' },
    });
    if (answer === null) return;
    const desired = Number(answer);
    if (!Number.isInteger(desired) || desired < min || desired > max) {
      notify(`Desired replicas must be a whole number between ${min} and ${max}.`);
      return;
    }
    try {
      await this.api.put(path`/models/${model.modelId}`, { autoScalingConfig: { desiredCapacity: desired } });
      notify(`${model.modelId}: scaling to ${desired}.`, 'info');
    } catch (error) {
      notify(`${model.modelId} could not be scaled: ${error.message}`);
    }
    this.kick();
  }

  async showLogs(model) {
    const output = h('pre', { class: 'logs', tabindex: '0', 'aria-label': `Logs of ${model.modelId}` }, 'Loading…');
    const load = async () => {
      try {
        const text = await this.api.get(path`/models/${model.modelId}/logs` + '?tail=200');
        output.textContent = text || '(no output yet)';
        output.scrollTop = output.scrollHeight;
      } catch (error) {
        output.textContent = error.message;
      }
    };
    load();
    await ask({
      title: `Logs of ${model.modelId}`, confirm: 'Close', cancel: 'Refresh', wide: true,
      body: output, onCancel: (event) => { event.preventDefault(); load(); },
    });
  }

  async remove(model) {
    const confirmed = await ask({ title: `Delete ${model.modelId}?`, body: 'The model leaves the API at once; hosted replicas are stopped.', confirm: 'Delete', danger: true });
    if (!confirmed) return;
    try {
      await this.api.delete(path`/models/${model.modelId}`);
      notify(`${model.modelId} deleted.`, 'info');
    } catch (error) {
      notify(`${model.modelId} could not be deleted: ${error.message}`);
    }
    this.kick();
  }

  kick() {
    clearTimeout(this.timer);
    this.refresh();
  }

  buildForm() {
    const field = (id, label, input, hint) => h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('p', { class: 'hint' }, hint) : null);
    const modelId = h('input', { id: 'new-model-id', placeholder: 'my-model', autocomplete: 'off' });
    const modelName = h('input', { id: 'new-model-name', placeholder: 'the upstream\'s model name (default: the id)', autocomplete: 'off' });
    const modelType = h('select', { id: 'new-model-type' }, h('option', { value: 'textgen' }, 'Text generation'), h('option', { value: 'embedding' }, 'Embedding'),
      h('option', { value: 'imagegen' }, 'Image generation'), h('option', { value: 'transcription' }, 'Transcription'),
      h('option', { value: 'speech' }, 'Speech'), h('option', { value: 'moderation' }, 'Moderation'), h('option', { value: 'rerank' }, 'Rerank'));
    const container = h('select', { id: 'new-model-container' },
      [['openai', 'OpenAI-compatible'], ['vllm', 'vLLM'], ['tgi', 'TGI'], ['tei', 'TEI'], ['ollama', 'Ollama'], ['llamacpp', 'llama.cpp']]
        .map(([value, label]) => h('option', { value }, label)));
    const apiKey = h('input', { id: 'new-model-api-key', type: 'password', autocomplete: 'new-password', placeholder: 'sent upstream as a bearer token; never shown again' });
    const endpoints = h('textarea', { id: 'new-model-endpoints', rows: '2', placeholder: 'http://10.0.0.5:8000/v1' });
    const groups = h('input', { id: 'new-model-groups', placeholder: 'comma-separated; empty: everyone', autocomplete: 'off' });
    const streaming = h('input', { id: 'new-model-streaming', type: 'checkbox', checked: true });
    const json = h('textarea', { id: 'new-model-json', rows: '6', placeholder: '{"modelId": "…", "hostingType": "lisa_hosted", "launch": {…}}' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'card model-form', hidden: true, 'aria-label': 'Add a model' },
      h('div', { class: 'row' }, field('new-model-id', 'Model id', modelId), field('new-model-name', 'Upstream model name', modelName)),
      h('div', { class: 'row' }, field('new-model-type', 'Type', modelType), field('new-model-container', 'Server', container)),
      field('new-model-endpoints', 'Endpoint URLs', endpoints, 'One OpenAI-compatible base URL per line; several are load-balanced.'),
      h('div', { class: 'row' }, field('new-model-api-key', 'API key (optional)', apiKey), field('new-model-groups', 'Allowed groups', groups)),
      h('label', { class: 'check' }, streaming, 'Supports streaming'),
      h('details', {}, h('summary', {}, 'Advanced: the whole definition as JSON (hosted models, health checks, TLS)'),
        field('new-model-json', 'Model definition (JSON)', json, 'When filled, it is sent as is and the fields above are ignored.')),
      error,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create model')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      let definition;
      if (json.value.trim()) {
        try { definition = JSON.parse(json.value); } catch (failure) {
          error.textContent = `The JSON is not valid: ${failure.message}`;
          error.hidden = false;
          return;
        }
      } else {
        if (!modelId.value.trim()) {
          error.textContent = 'A model id is required (or give the whole definition as JSON).';
          error.hidden = false;
          modelId.focus();
          return;
        }
        const urls = endpoints.value.split(/[\s,]+/).filter(Boolean);
        definition = {
          modelId: modelId.value.trim(), modelName: modelName.value.trim() || modelId.value.trim(), modelType: modelType.value,
          inferenceContainer: container.value, streaming: streaming.checked,
          endpoints: urls.map((url) => (apiKey.value ? { url, apiKey: apiKey.value } : { url })),
          allowedGroups: groups.value.split(',').map((group) => group.trim()).filter(Boolean),
        };
      }
      try {
        await this.api.post('/models', definition);
        notify(`${definition.modelId} created.`, 'info');
        form.reset();
        streaming.checked = true;
        form.hidden = true;
        this.kick();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    return form;
  }
}

export class TokensView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
  }

  mount(container) {
    this.container = container;
    this.tbody = h('tbody');
    this.secret = h('div', { class: 'secret', hidden: true, role: 'status' });
    const admin = this.app.me.isAdmin;
    const name = h('input', { id: 'token-name', required: true, placeholder: 'ci-pipeline', autocomplete: 'off', maxLength: 100 });
    const days = h('input', { id: 'token-days', type: 'number', min: '1', max: '3650', value: 90 });
    const owner = admin ? h('input', { id: 'token-owner', placeholder: `empty: yourself (${this.app.me.username})`, autocomplete: 'off' }) : null;
    const groups = admin ? h('input', { id: 'token-groups', placeholder: 'comma-separated', autocomplete: 'off' }) : null;
    const form = h('form', { class: 'card', 'aria-label': 'Create an API token' },
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'token-name' }, 'Name'), name),
        h('div', { class: 'field narrow' }, h('label', { for: 'token-days' }, 'Expires in (days)'), days)),
      admin ? h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'token-owner' }, 'For user'), owner),
        h('div', { class: 'field' }, h('label', { for: 'token-groups' }, 'Groups (for another user)'), groups)) : null,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'create-token' }, 'Create token')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const request = { name: name.value.trim(), expiresInDays: Number(days.value) || undefined };
      const username = owner?.value.trim();
      if (username) request.groups = groups.value.split(',').map((group) => group.trim()).filter(Boolean);
      try {
        const created = await this.api.post(username ? path`/api-tokens/${username}` : '/api-tokens', request);
        this.showSecret(created);
        form.reset();
        days.value = 90;
        this.refresh();
      } catch (error) {
        notify(`The token could not be created: ${error.message}`);
      }
    });
    // Only administrators and apiGroup members may create tokens: anyone else sees theirs, no form.
    const mayCreate = admin || this.app.me.mayCreateTokens;
    replace(container, h('div', { class: 'page' },
      h('div', { class: 'page-header' }, h('h1', {}, 'API tokens')),
      h('p', { class: 'hint' }, admin ? 'Every user\'s tokens. LISA stores only their hashes: a secret is shown once, when created.'
        : mayCreate ? 'Your tokens. LISA stores only their hashes: a secret is shown once, when created.'
          : 'Your tokens. Creating tokens needs membership of the API group: ask an administrator.'),
      mayCreate ? form : null, this.secret,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'data', id: 'tokens-table' },
          h('thead', {}, h('tr', {}, ['Name', 'User', 'Groups', 'Created', 'Expires'].map((title) => h('th', { scope: 'col' }, title)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          this.tbody))));
    this.refresh();
  }

  showSecret(created) {
    const value = h('code', { class: 'secret-value' }, created.token);
    const copy = h('button', {
      type: 'button', class: 'secondary small',
      onclick: async () => {
        try { await navigator.clipboard.writeText(created.token); copy.textContent = 'Copied'; } catch { copy.textContent = 'Select and copy it'; }
      },
    }, 'Copy');
    replace(this.secret,
      h('p', {}, h('strong', {}, `Token “${created.tokenInfo.name}” created. `), 'Copy it now: it will not be shown again.'),
      h('div', { class: 'secret-row' }, value, copy));
    this.secret.hidden = false;
  }

  async refresh() {
    try {
      const { tokens } = await this.api.get('/api-tokens');
      if (!tokens.length) {
        replace(this.tbody, h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No tokens.')));
        return;
      }
      replace(this.tbody, tokens.map((token) => h('tr', {},
        h('th', { scope: 'row' }, token.name, token.isSystemToken ? h('span', { class: 'badge' }, 'system') : null),
        h('td', {}, token.username),
        h('td', {}, token.groups.join(', ')),
        h('td', {}, formatTime(token.createdAt)),
        h('td', {}, token.expiresAt ? formatTime(token.expiresAt) : 'never'),
        h('td', {}, h('div', { class: 'actions' }, h('button', {
          type: 'button', class: 'danger small', 'aria-label': `Revoke ${token.name}`,
          onclick: async () => {
            if (!await ask({ title: `Revoke “${token.name}”?`, body: 'Requests with it are refused at once.', confirm: 'Revoke', danger: true })) return;
            try {
              await this.api.delete(path`/api-tokens/${token.id}`);
              notify(`Token “${token.name}” revoked.`, 'info');
              this.refresh();
            } catch (error) {
              notify(`The token could not be revoked: ${error.message}`);
            }
          },
        }, 'Revoke'))))));
    } catch (error) {
      if (error.status !== 401) refused(this.container, 'API tokens', error);
    }
  }
}

/** The status a model's badge shows: `Down` or `Degraded` for an InService model whose endpoints cannot all serve. */
export function shownStatus(model) {
  if (model.status !== 'InService') return model.status;
  if (model.health === 'down') return 'Down';
  if (model.health === 'degraded') return 'Degraded';
  return model.status;
}
