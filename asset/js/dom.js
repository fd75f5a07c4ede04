// Building DOM nodes without HTML strings.
//
// Everything the server or another user sent (message text, nicknames, group names) is
// put on the page as text nodes or attribute values, never parsed as HTML: `h()` has no
// way to set innerHTML, so a message such as `<img src=x onerror=…>` shows as those
// characters and runs nothing.

/**
 * Create an element. `props`: `class`, `text` (textContent), `dataset` (object),
 * `on<event>` (listener; names come from our code, never from data), any other key is
 * an attribute (`true` = present, `null`/`false`/`undefined` = absent).
 * Children: nodes, strings (become text nodes), arrays, null (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  appendChildren(el, children);
  return el;
}

export function setProps(el, props) {
  if (!props) return el;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  return el;
}

export function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Look an element up by id, failing loudly when a template lost it. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el;
}

/**
 * A URL from a message or a profile, if it is one of this server's own files (uploads
 * under /resource/, sticker packs and images under /asset/), else ''. The server checks
 * the same rule for messages; the client checks again before it loads anything.
 */
export function fileUrl(value) {
  // A file's download url: /attach/file/<sha256> (the server checks who may have it).
  return typeof value === 'string' && /^\/attach\/file\/[0-9a-f]{64}$/.test(value) ? value : '';
}

/** A url on this server under /resource/ or /asset/, or '' (never another origin). */
export function localUrl(value) {
  if (typeof value !== 'string') return '';
  if (!/^\/(resource|asset)\/[A-Za-z0-9_\-./]+$/.test(value)) return '';
  if (value.includes('..') || value.includes('//')) return '';
  return value;
}

/** Keep the node's children equal to `nodes` (in order), touching the DOM only where
 * something changed: nodes added at the end (a new message) or at the start (older
 * history) are inserted alone, so that a live region announces only them. Otherwise the
 * children are replaced, and focus goes back to the element that had it. */
export function syncChildren(parent, nodes) {
  const current = parent.children;
  let prefix = 0;
  while (prefix < current.length && prefix < nodes.length && current[prefix] === nodes[prefix]) prefix++;
  if (prefix === current.length && prefix === nodes.length) return false;
  if (prefix === current.length) {
    parent.append(...nodes.slice(prefix));
    return true;
  }
  const added = nodes.length - current.length;
  if (added > 0) {
    let suffix = 0;
    while (suffix < current.length && current[current.length - 1 - suffix] === nodes[nodes.length - 1 - suffix]) suffix++;
    if (suffix === current.length) {
      parent.prepend(...nodes.slice(0, added));
      return true;
    }
  }
  const focused = document.activeElement;
  const hadFocus = focused && parent.contains(focused) ? focused : null;
  parent.replaceChildren(...nodes);
  if (hadFocus && hadFocus.isConnected) hadFocus.focus({ preventScroll: true });
  return true;
}
