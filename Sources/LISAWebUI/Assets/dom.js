// Building DOM nodes without HTML strings: text always goes in as text, so nothing a
// model, a document or another user wrote can become markup or script.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple', 'maxLength', 'readOnly', 'required']);

/**
 * h('button', {class: 'primary', onclick: fn, 'aria-label': 'Send'}, 'Send')
 * Names starting with "on" become listeners; a few (value, checked, disabled, …) are set
 * as properties; everything else is an attribute (no HTML is ever parsed). Children are nodes,
 * strings (inserted as text) or arrays of either.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) {
      if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces `element`'s children. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** `when` as a short local date and time. `seconds` since 1970. */
export function formatTime(seconds) {
  if (seconds === undefined || seconds === null) return '';
  const date = new Date(seconds * 1000);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric', year: date.getFullYear() === today.getFullYear() ? undefined : 'numeric' });
}

/**
 * A modal dialog (native <dialog>: focus trapped, Escape cancels). Resolves with the
 * value of the button pressed, or null when cancelled. `body` is a node or text.
 */
export function ask({ title, body, confirm = 'OK', cancel = 'Cancel', danger = false, input = null, wide = false, onCancel = null }) {
  return new Promise((resolve) => {
    const field = input ? h('input', { type: 'text', value: input.value ?? '', 'aria-label': input.label, maxLength: input.maxLength ?? 200 }) : null;
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', {}, title),
      body ? h('div', { class: 'dialog-body' }, body) : null,
      field,
      h('div', { class: 'dialog-actions' },
        h('button', {
          type: 'button', class: 'secondary', value: 'cancel',
          onclick: (event) => { onCancel?.(event); if (!event.defaultPrevented) dialog.close('cancel'); },
        }, cancel),
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary', value: 'ok' }, confirm)));
    const dialog = h('dialog', { class: wide ? 'dialog wide' : 'dialog', 'aria-label': title }, form);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (field && !field.value.trim()) { field.focus(); return; }
      dialog.close('ok');
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (dialog.returnValue !== 'ok') resolve(null);
      else resolve(field ? field.value.trim() : true);
    });
    document.body.append(dialog);
    dialog.showModal();
    if (field) { field.focus(); field.select(); }
  });
}

/** A message in the notification area: errors stay until dismissed, others fade. */
export function notify(message, kind = 'error') {
  const area = document.getElementById('notifications');
  const close = h('button', { class: 'icon', 'aria-label': 'Dismiss', onclick: () => item.remove() }, '×');
  const item = h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, h('span', {}, message), close);
  area.append(item);
  // At most three at a time, so notices never pile up over the page.
  while (area.children.length > 3) area.firstElementChild.remove();
  if (kind !== 'error') setTimeout(() => item.remove(), 3000);
  return item;
}

/** Removes the passing (non-error) notices, e.g. when the page changes. */
export function clearNotices() {
  for (const item of document.querySelectorAll('#notifications .notice:not(.error)')) item.remove();
}

/** Offers `text` as a file download. */
export function download(name, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
