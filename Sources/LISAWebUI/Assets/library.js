// The library: prompt templates (create, edit as a new revision, share, delete) and the
// documents of the repositories the caller may use (list per collection, delete).

import { path } from './api.js';
import { ask, formatTime, h, notify, replace } from './dom.js';

const PUBLIC = 'lisa:public';

export class LibraryView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.me = app.me;
  }

  mount(container) {
    this.templateRows = h('tbody');
    this.documentRows = h('tbody');
    this.templateForm = this.buildTemplateForm();
    this.repositorySelect = h('select', { id: 'library-repository', onchange: () => this.loadCollections() });
    this.collectionSelect = h('select', { id: 'library-collection', onchange: () => this.loadDocuments() });
    replace(container, h('div', { class: 'page' },
      h('div', { class: 'page-header' }, h('h1', {}, 'Library')),
      h('section', { 'aria-labelledby': 'templates-title' },
        h('h2', { id: 'templates-title', class: 'section-title' }, 'Prompt templates'),
        h('p', { class: 'hint' }, 'Personas become the system prompt; directives go before your message. Each change keeps the previous revision.'),
        this.templateForm,
        h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'templates-table' },
          h('thead', {}, h('tr', {}, ['Title', 'Type', 'Owner', 'Shared with', 'Revision', 'Updated'].map((title) => h('th', { scope: 'col' }, title)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          this.templateRows))),
      h('section', { 'aria-labelledby': 'documents-title', class: 'library-documents' },
        h('h2', { id: 'documents-title', class: 'section-title' }, 'Documents'),
        this.me.isRagAdmin ? this.buildRepositoryForm() : null,
        h('div', { class: 'row' },
          h('div', { class: 'field' }, h('label', { for: 'library-repository' }, 'Repository'), this.repositorySelect),
          h('div', { class: 'field' }, h('label', { for: 'library-collection' }, 'Collection'), this.collectionSelect)),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'documents-table' },
          h('thead', {}, h('tr', {}, ['Document', 'Collection', 'Chunks', 'Added by', 'Added'].map((title) => h('th', { scope: 'col' }, title)),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          this.documentRows)))));
    this.loadTemplates();
    this.loadRepositories();
  }

  // MARK: templates

  buildTemplateForm() {
    const title = h('input', { id: 'template-title', autocomplete: 'off', maxLength: 200, placeholder: 'Code reviewer' });
    const type = h('select', { id: 'template-type' }, h('option', { value: 'persona' }, 'Persona (system prompt)'), h('option', { value: 'directive' }, 'Directive (before the message)'));
    const sharing = h('select', { id: 'template-sharing', onchange: () => { groups.hidden = sharing.value !== 'groups'; } },
      h('option', { value: 'private' }, 'Only me'), h('option', { value: 'groups' }, 'My groups…'), h('option', { value: 'public' }, 'Everyone'));
    const groups = h('input', { id: 'template-groups', hidden: true, autocomplete: 'off', placeholder: this.me.groups.join(', ') || 'group names, comma-separated', 'aria-label': 'Groups' });
    const body = h('textarea', { id: 'template-body', rows: '4', placeholder: 'You review code for correctness first, style second.' });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'save-template' }, 'Create template');
    const cancel = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => this.editTemplate(null) }, 'Cancel');
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'card', 'aria-label': 'Prompt template' },
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'template-title' }, 'Title'), title),
        h('div', { class: 'field' }, h('label', { for: 'template-type' }, 'Type'), type),
        h('div', { class: 'field' }, h('label', { for: 'template-sharing' }, 'Shared with'), sharing, groups)),
      h('div', { class: 'field' }, h('label', { for: 'template-body' }, 'Text'), body),
      error,
      h('div', { class: 'form-actions' }, cancel, submit));
    this.templateFields = { title, type, sharing, groups, body, submit, cancel, error };
    form.addEventListener('submit', (event) => { event.preventDefault(); this.saveTemplate(); });
    return form;
  }

  /** Fills the form with `template` to save a new revision of it; `null` goes back to creating. */
  editTemplate(template) {
    const fields = this.templateFields;
    this.editing = template;
    fields.title.value = template?.title ?? '';
    fields.type.value = template?.type ?? 'persona';
    fields.body.value = template?.body ?? '';
    const groups = (template?.groups ?? []).filter((group) => group !== PUBLIC);
    fields.sharing.value = template?.groups.includes(PUBLIC) ? 'public' : groups.length ? 'groups' : 'private';
    fields.groups.value = groups.join(', ');
    fields.groups.hidden = fields.sharing.value !== 'groups';
    fields.submit.textContent = template ? `Save revision ${template.revision + 1}` : 'Create template';
    fields.cancel.hidden = !template;
    fields.error.hidden = true;
    if (template) fields.title.focus();
  }

  async saveTemplate() {
    const fields = this.templateFields;
    const groups = fields.sharing.value === 'public' ? [PUBLIC]
      : fields.sharing.value === 'groups' ? fields.groups.value.split(',').map((group) => group.trim()).filter(Boolean) : [];
    if (fields.sharing.value === 'groups' && !groups.length) {
      fields.error.textContent = 'Name at least one group to share with.';
      fields.error.hidden = false;
      fields.groups.focus();
      return;
    }
    const input = { title: fields.title.value.trim(), type: fields.type.value, body: fields.body.value, groups };
    try {
      if (this.editing) await this.api.put(path`/prompt-templates/${this.editing.id}`, input);
      else await this.api.post('/prompt-templates', input);
      notify(`Template “${input.title}” saved.`, 'info');
      this.editTemplate(null);
      this.loadTemplates();
    } catch (error) {
      fields.error.textContent = error.message;
      fields.error.hidden = false;
    }
  }

  async loadTemplates() {
    try {
      const { Items: templates } = await this.api.get('/prompt-templates');
      if (!templates.length) {
        replace(this.templateRows, h('tr', {}, h('td', { colspan: '7', class: 'empty' }, 'No templates yet.')));
        return;
      }
      replace(this.templateRows, templates.map((template) => {
        const mine = template.owner === this.me.username || this.me.isAdmin;
        const shared = template.groups.includes(PUBLIC) ? 'everyone' : template.groups.join(', ') || 'only the owner';
        return h('tr', { 'data-template': template.id },
          h('th', { scope: 'row' }, template.title),
          h('td', {}, template.type),
          h('td', {}, template.owner),
          h('td', {}, shared),
          h('td', {}, String(template.revision)),
          h('td', {}, formatTime(template.updated)),
          h('td', {}, h('div', { class: 'actions' }, mine ? [
            h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${template.title}`, onclick: () => this.editTemplate(template) }, 'Edit'),
            h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${template.title}`, onclick: () => this.deleteTemplate(template) }, 'Delete'),
          ] : null)));
      }));
    } catch (error) {
      if (error.status !== 401) notify(`Templates could not be loaded: ${error.message}`);
    }
  }

  async deleteTemplate(template) {
    if (!await ask({ title: `Delete “${template.title}”?`, body: 'The template and its earlier revisions are deleted.', confirm: 'Delete', danger: true })) return;
    try {
      await this.api.delete(path`/prompt-templates/${template.id}`);
      if (this.editing?.id === template.id) this.editTemplate(null);
      this.loadTemplates();
    } catch (error) {
      notify(`The template could not be deleted: ${error.message}`);
    }
  }

  // MARK: repositories

  /** RAG administrators create repositories here: an id, a name, an embedding model, who may use it. */
  buildRepositoryForm() {
    const id = h('input', { id: 'repository-id', autocomplete: 'off', maxLength: 30, placeholder: 'handbook', pattern: '[a-z0-9_-]{1,30}' });
    const name = h('input', { id: 'repository-name', autocomplete: 'off', maxLength: 200, placeholder: 'Team handbook' });
    const model = h('select', { id: 'repository-model' }, h('option', { value: '' }, 'Loading…'));
    const type = h('select', { id: 'repository-type' },
      h('option', { value: '' }, 'The server\'s default'), h('option', { value: 'pgvector' }, 'pgvector'), h('option', { value: 'embedded' }, 'Embedded (one server)'));
    const groups = h('input', { id: 'repository-groups', autocomplete: 'off', placeholder: 'comma-separated; empty: everyone' });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'card', id: 'repository-form', hidden: true, 'aria-label': 'New repository' },
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'repository-id' }, 'Repository id'), id),
        h('div', { class: 'field' }, h('label', { for: 'repository-name' }, 'Name'), name)),
      h('div', { class: 'row' },
        h('div', { class: 'field' }, h('label', { for: 'repository-model' }, 'Embedding model'), model),
        h('div', { class: 'field' }, h('label', { for: 'repository-type' }, 'Vector store'), type),
        h('div', { class: 'field' }, h('label', { for: 'repository-groups' }, 'Allowed groups'), groups)),
      error,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'create-repository' }, 'Create repository')));
    const toggle = h('button', {
      type: 'button', class: 'secondary small', id: 'new-repository', 'aria-expanded': 'false', 'aria-controls': 'repository-form',
      onclick: async () => {
        form.hidden = !form.hidden;
        toggle.setAttribute('aria-expanded', String(!form.hidden));
        if (form.hidden) return;
        id.focus();
        try {
          const { data } = await this.api.get('/v1/models');
          const embedders = data.filter((entry) => entry.lisa?.modelType === 'embedding');
          replace(model, embedders.length ? embedders.map((entry) => h('option', { value: entry.id }, entry.id))
            : h('option', { value: '' }, 'No embedding model available'));
        } catch (failure) {
          replace(model, h('option', { value: '' }, 'Models could not be loaded'));
        }
      },
    }, 'New repository');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.hidden = true;
      const repository = {
        repositoryId: id.value.trim(), repositoryName: name.value.trim() || id.value.trim(), embeddingModelId: model.value,
        allowedGroups: groups.value.split(',').map((group) => group.trim()).filter(Boolean),
      };
      if (type.value) repository.type = type.value;
      try {
        await this.api.post('/repository', repository);
        notify(`Repository “${repository.repositoryName}” created.`, 'info');
        form.reset();
        form.hidden = true;
        toggle.setAttribute('aria-expanded', 'false');
        await this.loadRepositories(repository.repositoryId);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    });
    return h('div', { class: 'repository-admin' }, toggle, form);
  }

  // MARK: documents

  async loadRepositories(select = null) {
    try {
      const repositories = await this.api.get('/repository');
      if (!repositories.length) {
        replace(this.repositorySelect, h('option', { value: '' }, 'No repositories available'));
        replace(this.documentRows, h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No repositories you may use.')));
        return;
      }
      replace(this.repositorySelect, repositories.map((repository) =>
        h('option', { value: repository.repositoryId, selected: repository.repositoryId === select }, repository.repositoryName || repository.repositoryId)));
      await this.loadCollections();
    } catch (error) {
      if (error.status !== 401) notify(`Repositories could not be loaded: ${error.message}`);
    }
  }

  async loadCollections() {
    const repositoryId = this.repositorySelect.value;
    try {
      const collections = await this.api.get(path`/repository/${repositoryId}/collection`);
      replace(this.collectionSelect, h('option', { value: '' }, 'All collections'),
        collections.map((collection) => h('option', { value: collection.collectionId }, collection.name || collection.collectionId)));
    } catch (error) {
      notify(`Collections could not be loaded: ${error.message}`);
    }
    await this.loadDocuments();
  }

  async loadDocuments() {
    const repositoryId = this.repositorySelect.value;
    const collectionId = this.collectionSelect.value;
    try {
      const query = collectionId ? `?collectionId=${encodeURIComponent(collectionId)}` : '';
      const documents = await this.api.get(path`/repository/${repositoryId}/document` + query);
      if (!documents.length) {
        replace(this.documentRows, h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No documents yet. Upload some from the chat settings.')));
        return;
      }
      replace(this.documentRows, documents.map((document) => h('tr', { 'data-document': document.documentId },
        h('th', { scope: 'row' }, document.documentName),
        h('td', {}, document.collectionId),
        h('td', {}, String(document.chunks)),
        h('td', {}, document.username),
        h('td', {}, formatTime(document.createdAt)),
        h('td', {}, h('div', { class: 'actions' },
          document.username === this.me.username || this.me.isRagAdmin
            ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${document.documentName}`, onclick: () => this.deleteDocument(repositoryId, document) }, 'Delete')
            : null)))));
    } catch (error) {
      if (error.status !== 401) notify(`Documents could not be loaded: ${error.message}`);
    }
  }

  async deleteDocument(repositoryId, document) {
    if (!await ask({ title: `Delete “${document.documentName}”?`, body: 'Its passages stop grounding answers at once.', confirm: 'Delete', danger: true })) return;
    try {
      await this.api.delete(path`/repository/${repositoryId}/document/${document.documentId}`);
      notify(`“${document.documentName}” deleted.`, 'info');
      this.loadDocuments();
    } catch (error) {
      notify(`The document could not be deleted: ${error.message}`);
    }
  }
}
