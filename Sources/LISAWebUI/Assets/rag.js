// The RAG part of the chat settings: the repository, collection and top-k a chat is
// grounded in, and document upload with each ingestion job's status.

import { path } from './api.js';
import { h, notify, replace } from './dom.js';

const FINAL = new Set(['COMPLETED', 'FAILED']);

export class RAGPanel {
  /** `selection`: {repositoryId, collectionId, topK} or null; `onChange` gets the new one. */
  constructor(app, selection, onChange) {
    this.app = app;
    this.api = app.api;
    this.selection = selection;
    this.onChange = onChange;
    this.timers = new Set();
    this.repositorySelect = h('select', { id: 'repository', onchange: () => this.repositoryChanged() }, h('option', { value: '' }, 'None'));
    this.collectionSelect = h('select', { id: 'collection', onchange: () => this.changed() }, h('option', { value: '' }, 'Default'));
    this.topK = h('input', { id: 'top-k', type: 'number', min: '1', max: '50', step: '1', value: selection?.topK ?? 3, onchange: () => this.changed() });
    this.file = h('input', { id: 'upload-file', type: 'file', multiple: true, accept: '.txt,.md,.markdown,.html,.htm,.json,.csv,.pdf,.docx' });
    this.uploadButton = h('button', { type: 'button', class: 'secondary small', id: 'upload', onclick: () => this.upload() }, 'Upload');
    this.jobs = h('ul', { class: 'jobs', 'aria-live': 'polite', 'aria-label': 'Uploads' });
    this.details = h('div', { class: 'rag-details', hidden: true },
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'collection' }, 'Collection'), this.collectionSelect),
        h('div', { class: 'field narrow' }, h('label', { for: 'top-k' }, 'Top-k'), this.topK)),
      h('div', { class: 'field' }, h('label', { for: 'upload-file' }, 'Add documents'), this.file),
      this.uploadButton,
      this.jobs);
    this.element = h('section', { class: 'rag', 'aria-label': 'Documents' },
      h('h2', {}, 'Documents (RAG)'),
      h('div', { class: 'field' }, h('label', { for: 'repository' }, 'Repository'), this.repositorySelect),
      this.details);
    this.load();
  }

  unmount() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  async load() {
    try {
      this.repositories = await this.api.get('/repository');
    } catch (error) {
      if (error.status !== 401) notify(`Repositories could not be loaded: ${error.message}`);
      this.repositories = [];
    }
    replace(this.repositorySelect, h('option', { value: '' }, this.repositories.length ? 'None' : 'None available'),
      this.repositories.map((repository) => h('option', { value: repository.repositoryId }, repository.repositoryName || repository.repositoryId)));
    this.select(this.selection);
  }

  /** Shows `selection` (from a loaded session). */
  async select(selection) {
    this.selection = selection;
    if (!this.repositories) return;
    const known = selection && this.repositories.some((repository) => repository.repositoryId === selection.repositoryId);
    this.repositorySelect.value = known ? selection.repositoryId : '';
    if (selection?.topK) this.topK.value = selection.topK;
    await this.loadCollections(known ? selection.collectionId : null);
  }

  async loadCollections(selected) {
    const repositoryId = this.repositorySelect.value;
    this.details.hidden = !repositoryId;
    if (!repositoryId) return;
    try {
      const collections = await this.api.get(path`/repository/${repositoryId}/collection`);
      replace(this.collectionSelect, collections.map((collection) =>
        h('option', { value: collection.collectionId }, collection.name || collection.collectionId)));
      if (selected && collections.some((collection) => collection.collectionId === selected)) this.collectionSelect.value = selected;
    } catch (error) {
      notify(`Collections could not be loaded: ${error.message}`);
    }
  }

  async repositoryChanged() {
    await this.loadCollections(null);
    this.changed();
  }

  changed() {
    this.onChange(this.current());
  }

  /** The `lisa.rag` of a chat request, or null. */
  current() {
    const repositoryId = this.repositorySelect.value;
    if (!repositoryId) return null;
    const topK = Math.max(1, Math.min(50, parseInt(this.topK.value, 10) || 3));
    return { repositoryId, collectionId: this.collectionSelect.value || undefined, topK };
  }

  async upload() {
    const selection = this.current();
    if (!selection) return;
    const files = [...this.file.files];
    if (!files.length) { notify('Choose one or more files to upload.'); this.file.focus(); return; }
    this.uploadButton.disabled = true;
    for (const file of files) {
      const item = h('li', { class: 'job' }, h('span', { class: 'job-name' }, file.name), h('span', { class: 'job-status' }, 'Uploading…'));
      this.jobs.prepend(item);
      const form = new FormData();
      form.append('file', file, file.name);
      if (selection.collectionId) form.append('collectionId', selection.collectionId);
      try {
        const job = await this.api.call('POST', path`/repository/${selection.repositoryId}/upload`, { form });
        this.show(item, job);
        this.follow(selection.repositoryId, job.jobId, item);
      } catch (error) {
        this.show(item, { status: 'FAILED', reason: error.message });
      }
    }
    this.file.value = '';
    this.uploadButton.disabled = false;
  }

  show(item, job) {
    const status = item.querySelector('.job-status');
    const label = {
      PENDING: 'Queued', IN_PROGRESS: 'Ingesting…', COMPLETED: `Ready${job.chunks ? ` · ${job.chunks} chunks` : ''}`, FAILED: `Failed: ${job.reason ?? 'unknown reason'}`,
    }[job.status] ?? job.status;
    status.textContent = label;
    item.dataset.status = job.status;
  }

  follow(repositoryId, jobId, item, delay = 500) {
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      try {
        const job = await this.api.get(path`/repository/${repositoryId}/jobs/${jobId}`);
        this.show(item, job);
        if (!FINAL.has(job.status)) this.follow(repositoryId, jobId, item, Math.min(delay * 1.5, 4000));
      } catch (error) {
        this.show(item, { status: 'FAILED', reason: error.message });
      }
    }, delay);
    this.timers.add(timer);
  }
}
