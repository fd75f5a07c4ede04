// A person's sheet, from the header of a 1:1 chat: their profile, and Unfriend, Block or
// Unblock. Unfriending and blocking ask once more on the button itself (no blocking
// confirm()); both end the friendship for both sides at once, the history stays.
import { api } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar } from '../format.js';
import { t } from '../i18n.js';
import { icon } from '../icons.js';

const LABELS = { unfriend: () => t('person.unfriend'), block: () => t('person.block') };
const CONFIRM = { unfriend: () => t('person.confirm_unfriend'), block: () => t('person.confirm_block') };

export class PersonDialog {
  constructor(app) {
    this.app = app;
    this.dialog = byId('person-dialog');
    this.userId = null;
    byId('person-close').append(icon('close'));
    byId('person-close').addEventListener('click', () => this.dialog.close());
    byId('person-unfriend').addEventListener('click', () => this.act('unfriend'));
    byId('person-block').addEventListener('click', () => this.act('block'));
    byId('person-unblock').addEventListener('click', () => this.unblock());
    this.dialog.addEventListener('close', () => { this.userId = null; });
  }

  show(userId) {
    this.userId = userId;
    this.error('');
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
  }

  render() {
    const { state } = this.app;
    const id = this.userId;
    const user = state.users.get(id) || { id, nickname: state.userName(id) };
    const friend = state.isFriend(id);
    byId('person-title').textContent = user.nickname;
    byId('person-card').replaceChildren(
      avatar(user, { size: 'lg', online: friend ? state.isOnline(id) : undefined }),
      h('div', null,
        h('p', { class: 'person-memo', text: user.memo || '' }),
        h('p', { class: 'person-memo', text: friend ? t('person.friend') : t('person.not_friend') })));
    for (const verb of Object.keys(LABELS)) {
      const button = byId(`person-${verb}`);
      button.textContent = LABELS[verb]();
      delete button.dataset.confirm;
    }
    const blocked = state.blocked.has(id);
    byId('person-unfriend').hidden = !friend;
    byId('person-block').hidden = blocked;
    byId('person-unblock').hidden = !blocked;
  }

  async act(verb) {
    const button = byId(`person-${verb}`);
    if (!button.dataset.confirm) {
      button.dataset.confirm = 'yes';
      button.textContent = CONFIRM[verb]();
      return;
    }
    const id = this.userId;
    try {
      await api(`/contact/${verb}`, { dstid: id });
    } catch (error) {
      this.error(error.message);
      return;
    }
    this.app.setOnline(id, false);
    await Promise.all([this.app.refresh('friends'), verb === 'block' ? this.app.profile.loadBlocked() : null]);
    this.app.invalidate('lists', 'conv');
    if (this.userId === id) this.render();
  }

  async unblock() {
    const id = this.userId;
    try {
      await api('/contact/unblock', { dstid: id });
    } catch (error) {
      this.error(error.message);
      return;
    }
    await this.app.profile.loadBlocked();
    if (this.userId === id) this.render();
  }

  error(message) {
    const el = byId('person-error');
    el.textContent = message;
    el.hidden = !message;
  }
}
