// The chat view: messages, the composer, streaming with stop, and the settings panel
// (model, parameters, system prompt, prompt templates, RAG). A session is saved with
// PUT /session/{id} after every answer, finished, stopped or failed.

import { APIError, path } from './api.js';
import { ask, h, notify, replace } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { RAGPanel } from './rag.js';

const DEFAULTS_KEY = 'lisa.chat.defaults';

function defaults() {
  try { return JSON.parse(localStorage.getItem(DEFAULTS_KEY) ?? '{}'); } catch { return {}; }
}

/** "0.4 s to first token · 2.1 s · 45 tokens" for an answer's metadata ('' when unknown). */
function answerStats(metadata) {
  // Sub-second figures in milliseconds: a fast answer is not "0.0 s".
  const seconds = (ms) => (ms < 1000 ? `${Math.max(Math.round(ms), 1)} ms` : `${(ms / 1000).toFixed(1)} s`);
  const parts = [];
  if (metadata.firstTokenMs !== undefined) parts.push(`${seconds(metadata.firstTokenMs)} to first token`);
  if (metadata.totalMs !== undefined) parts.push(seconds(metadata.totalMs));
  if (metadata.usage?.completion_tokens !== undefined) parts.push(`${metadata.usage.completion_tokens} tokens`);
  return parts.join(' · ');
}

/** The models the picker offers from `/v1/models`' data: text generation models that can take requests (not `down`). */
export function offeredModels(data) {
  return data.filter((model) => (model.lisa?.modelType ?? 'textgen') === 'textgen' && model.lisa?.health !== 'down');
}

/** A session's title from its first message: the text without Markdown marks, on one line. */
export function plainTitle(text) {
  return text
    .replace(/```[\s\S]*?(```|$)/g, ' ')
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)/gm, '')
    .replace(/(\*\*|\*|~~|`)(?=\S)([\s\S]*?\S)\1/g, '$2')
    .replace(/(^|\s)(__|_)(?=\S)([^_]*?\S)\2(?=\s|[.,;:!?]|$)/g, '$1$3')
    .replace(/`/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 60);
}

export class ChatView {
  constructor(app, sessionId) {
    this.app = app;
    this.api = app.api;
    this.sessionId = sessionId;
    this.isNew = !sessionId;
    this.history = [];
    this.name = null;
    this.controller = null;
    this.configuration = { modelArgs: { temperature: 0.7, max_tokens: 1024, top_p: 1 }, systemPrompt: '', rag: null, ...defaults() };
  }

  mount(container) {
    this.messages = h('div', { class: 'messages', role: 'log', 'aria-live': 'off', 'aria-label': 'Conversation' });
    this.input = h('textarea', {
      id: 'composer-input', rows: '1', placeholder: 'Message LISA…',
      'aria-label': 'Message', 'aria-describedby': 'composer-hint', onkeydown: (event) => this.composerKey(event), oninput: () => this.autosize(),
    });
    this.sendButton = h('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send');
    this.stopButton = h('button', { type: 'button', class: 'danger', id: 'stop', hidden: true, onclick: () => this.stop() }, 'Stop');
    const composer = h('form', { class: 'composer', 'aria-label': 'Send a message' },
      h('div', { class: 'composer-field' }, this.input,
        h('p', { id: 'composer-hint', class: 'hint composer-hint' }, 'Enter sends · Shift+Enter adds a line · Escape stops the answer')),
      this.sendButton, this.stopButton);
    composer.addEventListener('submit', (event) => { event.preventDefault(); this.send(); });

    this.settings = this.buildSettings();
    const settingsButton = h('button', {
      type: 'button', class: 'secondary small settings-toggle', 'aria-controls': 'settings', 'aria-expanded': 'false',
      onclick: () => this.app.toggleDrawer('settings', settingsButton),
    }, 'Settings');
    this.title = h('h1', { class: 'chat-title' }, 'New chat');
    // The conversation is not a live region (a stream would be read word by word); this says
    // once when an answer has ended, and how.
    this.announcer = h('p', { class: 'sr-only', role: 'status', id: 'answer-status' });
    replace(container,
      h('div', { class: 'chat' },
        h('div', { class: 'chat-main' },
          h('div', { class: 'chat-header' }, this.title, settingsButton, this.announcer),
          this.messages,
          composer),
        this.settings));
    // Escape stops an answer wherever the focus is.
    this.onKey = (event) => {
      if (event.key === 'Escape' && this.controller) {
        event.preventDefault();
        this.stop();
      }
    };
    document.addEventListener('keydown', this.onKey);
    this.renderMessages();
    this.loadChoices();
    if (this.sessionId) this.loadSession(); else this.input.focus();
  }

  unmount() {
    document.removeEventListener('keydown', this.onKey);
    this.controller?.abort();
    this.rag?.unmount();
  }

  // MARK: settings

  buildSettings() {
    this.modelSelect = h('select', { id: 'model', onchange: () => this.remember() }, h('option', { value: '' }, 'Loading models…'));
    const numberField = (id, label, key, min, max, step) => {
      const input = h('input', {
        id, type: 'number', min, max, step, value: this.configuration.modelArgs[key] ?? '',
        onchange: () => {
          const value = input.value === '' ? undefined : Number(input.value);
          if (value !== undefined && (Number.isNaN(value) || value < min || value > max)) {
            notify(`${label} must be between ${min} and ${max}.`);
            input.value = this.configuration.modelArgs[key] ?? '';
            return;
          }
          this.configuration.modelArgs[key] = value;
          this.remember();
        },
      });
      return h('div', { class: 'field' }, h('label', { for: id }, label), input);
    };
    this.systemPrompt = h('textarea', {
      id: 'system-prompt', rows: '4', value: this.configuration.systemPrompt ?? '', placeholder: 'You are a helpful assistant.',
      onchange: () => { this.configuration.systemPrompt = this.systemPrompt.value; this.remember(); },
    });
    this.templateSelect = h('select', { id: 'template', onchange: () => this.applyTemplate() }, h('option', { value: '' }, 'Choose a template…'));
    this.rag = new RAGPanel(this.app, this.configuration.rag, (rag) => { this.configuration.rag = rag; this.remember(); });
    return h('aside', { class: 'settings', id: 'settings', 'aria-label': 'Chat settings' },
      h('button', { type: 'button', class: 'icon drawer-close', 'aria-label': 'Close settings', onclick: () => this.app.closeDrawers() }, '×'),
      h('h2', {}, 'Model'),
      h('div', { class: 'field' }, h('label', { for: 'model' }, 'Model'), this.modelSelect),
      h('div', { class: 'row' },
        numberField('temperature', 'Temperature', 'temperature', 0, 2, 0.1),
        numberField('top-p', 'Top-p', 'top_p', 0, 1, 0.05)),
      numberField('max-tokens', 'Max tokens', 'max_tokens', 1, 131072, 1),
      h('h2', {}, 'Instructions'),
      h('div', { class: 'field' }, h('label', { for: 'template' }, 'Prompt template'), this.templateSelect),
      h('div', { class: 'field' }, h('label', { for: 'system-prompt' }, 'System prompt'), this.systemPrompt),
      h('button', { type: 'button', class: 'secondary small', onclick: () => this.saveTemplate() }, 'Save as template'),
      this.rag.element);
  }

  /** Remembers the settings for the next new chat. */
  remember() {
    this.configuration.selectedModel = this.modelSelect.value || this.configuration.selectedModel;
    localStorage.setItem(DEFAULTS_KEY, JSON.stringify({
      selectedModel: this.configuration.selectedModel, modelArgs: this.configuration.modelArgs, rag: this.configuration.rag,
    }));
  }

  async loadChoices() {
    try {
      const list = await this.api.get('/v1/models');
      const textModels = list.data.filter((model) => (model.lisa?.modelType ?? 'textgen') === 'textgen');
      this.models = offeredModels(list.data);
      if (!this.models.length) {
        const why = !this.app.me.mayCallInference ? 'Your account may not use models here'
          : textModels.length ? 'No model can take requests now' : 'No models available to you';
        replace(this.modelSelect, h('option', { value: '' }, why));
      } else {
        replace(this.modelSelect, this.models.map((model) => h('option', { value: model.id }, model.id)));
        this.selectModel(this.configuration.selectedModel);
      }
    } catch (error) {
      replace(this.modelSelect, h('option', { value: '' }, 'Models could not be loaded'));
      if (error.status !== 401) notify(`Models could not be loaded: ${error.message}`);
    }
    try {
      const { Items: templates } = await this.api.get('/prompt-templates');
      this.templates = templates;
      replace(this.templateSelect, h('option', { value: '' }, templates.length ? 'Choose a template…' : 'No templates yet'),
        templates.map((template) => h('option', { value: template.id }, `${template.title} (${template.type})`)));
    } catch (error) {
      if (error.status !== 401) notify(`Prompt templates could not be loaded: ${error.message}`);
    }
  }

  selectModel(id) {
    if (id && this.models?.some((model) => model.id === id)) this.modelSelect.value = id;
  }

  applyTemplate() {
    const template = this.templates?.find((item) => item.id === this.templateSelect.value);
    if (!template) return;
    if (template.type === 'directive') {
      this.input.value = this.input.value ? `${template.body}\n\n${this.input.value}` : `${template.body}\n\n`;
      this.input.focus();
      this.autosize();
    } else {
      this.systemPrompt.value = template.body;
      this.configuration.systemPrompt = template.body;
    }
    this.templateSelect.value = '';
  }

  async saveTemplate() {
    const body = this.systemPrompt.value.trim();
    if (!body) { notify('Write a system prompt first.'); return; }
    const title = await ask({ title: 'Save as prompt template', confirm: 'Save', input: { value: '', label: 'Template title' } });
    if (!title) return;
    try {
      await this.api.post('/prompt-templates', { title, type: 'persona', body });
      notify(`Template “${title}” saved.`, 'info');
      this.loadChoices();
    } catch (error) {
      notify(`The template could not be saved: ${error.message}`);
    }
  }

  // MARK: session

  async loadSession() {
    try {
      const session = await this.api.get(path`/session/${this.sessionId}`);
      this.history = Array.isArray(session.history) ? session.history : [];
      this.name = session.name ?? null;
      const saved = session.configuration ?? {};
      this.configuration = { ...this.configuration, ...saved, modelArgs: { ...this.configuration.modelArgs, ...(saved.modelArgs ?? {}) } };
      this.systemPrompt.value = this.configuration.systemPrompt ?? '';
      for (const [key, id] of [['temperature', 'temperature'], ['top_p', 'top-p'], ['max_tokens', 'max-tokens']]) {
        const input = this.settings.querySelector(`#${id}`);
        if (input) input.value = this.configuration.modelArgs[key] ?? '';
      }
      this.selectModel(this.configuration.selectedModel);
      this.rag.select(this.configuration.rag);
      this.renderMessages();
      this.input.focus();
    } catch (error) {
      if (error.status === 404) {
        replace(this.messages, h('div', { class: 'empty-state' }, h('h2', {}, 'Session not found'),
          h('p', {}, 'It may have been deleted. '), h('a', { href: '#/' }, 'Start a new chat')));
      } else if (error.status !== 401) {
        notify(`The session could not be loaded: ${error.message}`);
      }
    }
  }

  async save() {
    if (!this.history.length) return;
    if (!this.sessionId) this.sessionId = crypto.randomUUID();
    // A new chat gets its address once saved — unless the user has already gone elsewhere
    // (leaving stops the answer, which saves it here).
    if (this.isNew) {
      this.isNew = false;
      if (this.app.view === this) {
        history.replaceState(null, '', `#/chat/${encodeURIComponent(this.sessionId)}`);
        this.app.viewKey = `chat:${this.sessionId}`;
      }
    }
    if (!this.name) {
      const first = this.history.find((message) => message.type === 'human')?.content ?? 'Chat';
      this.name = plainTitle(first) || 'Chat';
    }
    try {
      const session = await this.api.put(path`/session/${this.sessionId}`, {
        history: this.history, configuration: this.configuration, name: this.name,
      });
      this.app.sessionSaved(session);
      this.title.textContent = session.name ?? 'Chat';
    } catch (error) {
      if (error.status !== 401) notify(`The session could not be saved: ${error.message}`);
    }
  }

  // MARK: messages

  renderMessages() {
    this.title.textContent = this.name ?? (this.history.length ? 'Chat' : 'New chat');
    if (!this.history.length) {
      replace(this.messages, h('div', { class: 'empty-state' },
        h('h2', {}, `Hello, ${this.app.me.username}`),
        h('p', {}, 'Pick a model in Settings and ask anything. Choose a repository there to ground answers in your documents.')));
      return;
    }
    replace(this.messages, this.history.map((message, index) => this.messageElement(message, { last: index === this.history.length - 1 })));
    this.scrollToEnd(true);
  }

  messageElement(message, { last = false } = {}) {
    const human = message.type === 'human';
    const body = h('div', { class: 'message-body' });
    if (human) body.append(...message.content.split('\n').flatMap((line, i) => (i ? [h('br'), line] : [line])));
    else body.append(renderMarkdown(message.content));
    // A failed or stopped answer with no text shows only its note.
    const empty = !human && !message.content && (message.metadata?.error || message.metadata?.stopped);
    const element = h('article', { class: `message ${human ? 'human' : 'ai'}`, 'aria-label': human ? 'You said' : 'LISA answered' },
      h('div', { class: 'message-meta' }, human ? 'You' : (message.metadata?.model ?? 'Assistant')),
      empty ? null : body);
    const footer = this.messageFooter(message, last);
    if (footer) element.append(footer);
    return element;
  }

  messageFooter(message, last) {
    const metadata = message.metadata ?? {};
    const parts = [];
    if (message.type === 'ai') {
      const failed = metadata.error || metadata.stopped;
      parts.push(h('div', { class: 'message-actions' },
        message.content ? h('button', {
          type: 'button', class: 'link small copy-answer', onclick: async (event) => {
            try {
              await navigator.clipboard.writeText(message.content);
              event.target.textContent = 'Copied';
            } catch {
              event.target.textContent = 'Copy failed';
            }
            setTimeout(() => { event.target.textContent = 'Copy'; }, 1500);
          },
        }, 'Copy') : null,
        last ? h('button', { type: 'button', class: 'link small regenerate', onclick: () => this.regenerate() }, failed ? 'Retry' : 'Regenerate') : null,
        h('span', { class: 'message-stats' }, answerStats(metadata))));
    }
    if (metadata.stopped) parts.push(h('p', { class: 'message-note' }, 'Stopped.'));
    if (metadata.error) parts.push(h('p', { class: 'message-error', role: 'alert' }, metadata.error));
    if (metadata.sources?.length) {
      parts.push(h('details', { class: 'sources', open: true },
        h('summary', {}, `Sources (${metadata.sources.length})`),
        h('ol', {}, metadata.sources.map((source) => h('li', { class: 'source' },
          h('span', { class: 'source-name' }, source.documentName),
          h('span', { class: 'source-score' }, ` · score ${Number(source.score).toFixed(3)}`),
          h('blockquote', {}, source.text.length > 400 ? `${source.text.slice(0, 400)}…` : source.text))))));
    }
    return parts.length ? h('div', { class: 'message-footer' }, parts) : null;
  }

  scrollToEnd(force = false) {
    const near = this.messages.scrollHeight - this.messages.scrollTop - this.messages.clientHeight < 120;
    if (force || near) this.messages.scrollTop = this.messages.scrollHeight;
  }

  composerKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  streaming(on) {
    this.sendButton.hidden = on;
    this.stopButton.hidden = !on;
    this.input.setAttribute('aria-busy', String(on));
    if (on) this.stopButton.focus(); else if (this.app.view === this) this.input.focus();
  }

  stop() {
    this.controller?.abort();
  }

  /** The request's messages: the system prompt, then the conversation. */
  requestMessages() {
    const messages = [];
    if (this.configuration.systemPrompt?.trim()) messages.push({ role: 'system', content: this.configuration.systemPrompt.trim() });
    for (const message of this.history) {
      if (message.type === 'human') messages.push({ role: 'user', content: message.content });
      else if (message.type === 'ai' && message.content) messages.push({ role: 'assistant', content: message.content });
    }
    return messages;
  }

  async send() {
    const text = this.input.value.trim();
    if (!text || this.controller) return;
    const model = this.modelSelect.value;
    if (!model) { notify('Choose a model first (Settings).'); return; }
    this.configuration.selectedModel = model;
    this.configuration.systemPrompt = this.systemPrompt.value;
    if (!this.history.length) this.messages.replaceChildren();
    const human = { type: 'human', content: text };
    this.history.push(human);
    this.messages.append(this.messageElement(human));
    this.input.value = '';
    this.autosize();
    await this.answer(model);
  }

  /** Answers the last message again (after a failure, a stop, or to get another answer). */
  async regenerate() {
    const model = this.modelSelect.value;
    if (this.controller || !model || this.history.at(-1)?.type !== 'ai') return;
    this.history.pop();
    const answers = this.messages.querySelectorAll('.message.ai');
    answers[answers.length - 1]?.remove();
    await this.answer(model);
  }

  /** Streams `model`'s answer to the conversation so far into a new message, then saves. */
  async answer(model) {
    for (const button of this.messages.querySelectorAll('.regenerate')) button.remove();
    const answer = { type: 'ai', content: '', metadata: { model } };
    const element = this.messageElement(answer);
    element.classList.add('streaming');
    element.setAttribute('aria-busy', 'true');
    const body = element.querySelector('.message-body');
    body.append(h('span', { class: 'typing', 'aria-label': 'LISA is answering' }, '…'));
    this.messages.append(element);
    this.scrollToEnd(true);

    const request = { model, messages: this.requestMessages(), ...this.parameters(), stream_options: { include_usage: true } };
    const rag = this.rag.current();
    if (rag) request.lisa = { rag };
    this.controller = new AbortController();
    this.streaming(true);
    let frame = null;
    const paint = () => {
      frame = null;
      replace(body, renderMarkdown(answer.content));
      this.scrollToEnd();
    };
    const started = performance.now();
    try {
      await this.api.streamChat(request, this.controller.signal, (chunk) => {
        if (chunk.lisa?.sources) answer.metadata.sources = chunk.lisa.sources;
        if (chunk.usage) answer.metadata.usage = chunk.usage;
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          answer.metadata.firstTokenMs ??= Math.round(performance.now() - started);
          answer.content += delta;
          frame ??= requestAnimationFrame(paint);
        }
      });
    } catch (error) {
      if (error.name === 'AbortError') answer.metadata.stopped = true;
      else answer.metadata.error = error instanceof APIError ? error.message : `The answer failed: ${error.message}`;
    } finally {
      answer.metadata.totalMs = Math.round(performance.now() - started);
      if (frame) cancelAnimationFrame(frame);
      this.controller = null;
      this.history.push(answer);
      const finished = this.messageElement(answer, { last: true });
      element.replaceWith(finished);
      this.streaming(false);
      this.scrollToEnd();
      this.announcer.textContent = answer.metadata.error ? `The answer failed: ${answer.metadata.error}`
        : answer.metadata.stopped ? 'The answer was stopped.' : 'The answer is complete.';
      await this.save();
    }
  }

  parameters() {
    const args = this.configuration.modelArgs;
    const parameters = {};
    for (const key of ['temperature', 'top_p', 'max_tokens']) {
      if (args[key] !== undefined && args[key] !== null && args[key] !== '') parameters[key] = args[key];
    }
    return parameters;
  }
}
