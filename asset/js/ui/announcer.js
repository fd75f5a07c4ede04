// What a screen reader is told as it happens (WCAG 4.1.3, status messages): a message
// that arrives live, the connection lost or back. One polite live region (role="log")
// that only ever gets new lines, so that history loading, a re-render or a conversation
// opening is never read out again: the message list itself is not a live region.
import { byId, h } from '../dom.js';

const KEPT = 5; // lines kept in the region; older ones were read already

export class Announcer {
  constructor(id = 'announcer') {
    this.el = byId(id);
  }

  say(text) {
    if (!this.el || !text) return;
    this.el.append(h('p', { text }));
    while (this.el.childElementCount > KEPT) this.el.firstElementChild.remove();
  }
}
