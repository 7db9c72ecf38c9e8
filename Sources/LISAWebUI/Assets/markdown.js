// Markdown for model answers, built as DOM nodes. Model output is untrusted: nothing here
// ever parses HTML, so `<script>` or `<img onerror=…>` in an answer shows as those
// characters. Links keep only http(s) and mailto targets and open in a new tab without
// a referrer. Supports fenced code (an unclosed fence while streaming is code too),
// headings, lists, block quotes, tables, rules, inline code, bold, italic, strikethrough.

import { h } from './dom.js';

const SAFE_LINK = /^(https?:\/\/|mailto:)/i;

/** The nodes of `text` rendered as Markdown, in a fragment. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  let index = 0;
  let paragraph = [];

  const flush = () => {
    if (paragraph.length) {
      const p = h('p');
      paragraph.forEach((line, i) => {
        if (i > 0) p.append(h('br'));
        p.append(...inline(line));
      });
      fragment.append(p);
      paragraph = [];
    }
  };

  while (index < lines.length) {
    const line = lines[index];
    const fence = line.match(/^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/);
    if (fence) {
      flush();
      const marker = fence[1];
      const body = [];
      index += 1;
      while (index < lines.length && !lines[index].trim().startsWith(marker)) body.push(lines[index++]);
      index += 1; // the closing fence, when there is one
      fragment.append(codeBlock(body.join('\n'), fence[2]));
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      flush();
      fragment.append(h(`h${Math.min(heading[1].length + 2, 6)}`, {}, ...inline(heading[2])));
      index += 1;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush();
      fragment.append(h('hr'));
      index += 1;
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      flush();
      const quoted = [];
      while (index < lines.length && /^\s{0,3}>/.test(lines[index])) quoted.push(lines[index++].replace(/^\s{0,3}>\s?/, ''));
      fragment.append(h('blockquote', {}, renderMarkdown(quoted.join('\n'))));
      continue;
    }
    const item = line.match(/^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/);
    if (item) {
      flush();
      const ordered = /\d/.test(item[2]);
      const list = h(ordered ? 'ol' : 'ul');
      if (ordered && parseInt(item[2], 10) !== 1) list.start = parseInt(item[2], 10);
      while (index < lines.length) {
        const next = lines[index].match(/^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/);
        if (next && /\d/.test(next[2]) === ordered) {
          list.append(h('li', {}, ...inline(next[3])));
          index += 1;
        } else if (lines[index].match(/^\s{2,}\S/) && list.lastChild) {
          list.lastChild.append(h('br'), ...inline(lines[index].trim()));
          index += 1;
        } else break;
      }
      fragment.append(list);
      continue;
    }
    if (line.includes('|') && index + 1 < lines.length && /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(lines[index + 1])) {
      flush();
      const cells = (row) => row.trim().replace(/^\||\|$/g, '').split('|').map((cell) => cell.trim());
      const head = h('tr', {}, cells(line).map((cell) => h('th', {}, ...inline(cell))));
      const body = h('tbody');
      index += 2;
      while (index < lines.length && lines[index].includes('|') && lines[index].trim() !== '') {
        body.append(h('tr', {}, cells(lines[index]).map((cell) => h('td', {}, ...inline(cell)))));
        index += 1;
      }
      fragment.append(h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), body)));
      continue;
    }
    if (line.trim() === '') {
      flush();
    } else {
      paragraph.push(line);
    }
    index += 1;
  }
  flush();
  return fragment;
}

function codeBlock(code, language) {
  const copy = h('button', {
    class: 'copy', type: 'button', 'aria-label': 'Copy code',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(code);
        copy.textContent = 'Copied';
      } catch {
        copy.textContent = 'Copy failed';
      }
      setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    },
  }, 'Copy');
  return h('div', { class: 'code-block' },
    h('div', { class: 'code-header' }, h('span', {}, language || 'text'), copy),
    h('pre', {}, h('code', { class: language ? `language-${language}` : null }, code)));
}

// Inline spans, longest-first: code, links, bold, strikethrough, italic.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\[([^\]\n]+)\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)|\*\*([^*\n]+?)\*\*|__([^_\n]+?)__|~~([^~\n]+?)~~|\*([^*\s][^*\n]*?)\*|(?<![\w])_([^_\s][^_\n]*?)_(?![\w])/g;

/** The nodes of one line's inline Markdown. */
export function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const [whole, , code, label, target, bold1, bold2, strike, italic1, italic2] = match;
    if (code !== undefined) {
      nodes.push(h('code', {}, code.trim() === '' ? code : code.replace(/^ (.*) $/, '$1')));
    } else if (label !== undefined) {
      nodes.push(SAFE_LINK.test(target)
        ? h('a', { href: target, target: '_blank', rel: 'noopener noreferrer nofollow' }, ...inline(label))
        : document.createTextNode(whole));
    } else if (bold1 !== undefined || bold2 !== undefined) {
      nodes.push(h('strong', {}, ...inline(bold1 ?? bold2)));
    } else if (strike !== undefined) {
      nodes.push(h('del', {}, ...inline(strike)));
    } else {
      nodes.push(h('em', {}, ...inline(italic1 ?? italic2)));
    }
    last = match.index + whole.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}
