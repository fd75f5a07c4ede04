// The profile tab: photo (uploaded like a chat photo), nickname, about, the users I block
// (with Unblock), and, apart from Save, log out, which asks first.
import { api, upload } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar } from '../format.js';
import { t } from '../i18n.js';
import { busy, clearForm, clearOnInput, showApiError, showFieldError, showOk } from './forms.js';

export class ProfilePanel {
  constructor(app) {
    this.app = app;
    this.form = byId('profile');
    clearOnInput(this.form);
    this.form.addEventListener('submit', (event) => { event.preventDefault(); this.save(); });
    this.setupLogout();
    byId('avatar-file').addEventListener('change', (event) => {
      const file = event.target.files[0];
      event.target.value = '';
      if (file) this.uploadPhoto(file);
    });
    this.filledFor = null;
  }

  /** Log out asks first, in a dialog that also says what happens to unsent messages;
   * Escape or "Stay logged in" closes it and focus goes back to the button. */
  setupLogout() {
    const dialog = byId('logout-dialog');
    const button = byId('logout');
    button.addEventListener('click', () => {
      byId('logout-title').textContent = t('profile.logout_title');
      byId('logout-text').textContent = t('profile.logout_text');
      byId('logout-cancel').textContent = t('profile.logout_cancel');
      byId('logout-confirm').textContent = t('profile.logout_confirm');
      const unsent = this.app.unsent();
      const warn = byId('logout-unsent');
      warn.hidden = unsent === 0;
      warn.textContent = unsent ? t('profile.logout_unsent', { count: unsent }) : '';
      dialog.showModal();
      byId('logout-cancel').focus();
    });
    byId('logout-cancel').addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { if (!this.loggingOut) button.focus(); });
    byId('logout-confirm').addEventListener('click', () => {
      this.loggingOut = true;
      byId('logout-confirm').disabled = true;
      this.app.logout();
    });
  }

  render() {
    const me = this.app.state.me;
    byId('profile-avatar').replaceChildren(avatar(me, { size: 'xl' }));
    byId('profile-mobile').textContent = me.mobile ? t('profile.mobile', { mobile: me.mobile }) : '';
    // Fill the fields once (and after a save), not while the user is typing in them.
    if (this.filledFor !== me) {
      this.form.elements.namedItem('nickname').value = me.nickname || '';
      this.form.elements.namedItem('memo').value = me.memo || '';
      this.filledFor = me;
    }
  }

  async update(values) {
    const me = await api('/user/update', values);
    this.app.state.me = me;
    this.app.state.users.set(me.id, me);
    this.app.invalidate('me', 'conv');
    return me;
  }

  save() {
    const form = this.form;
    clearForm(form);
    const nickname = form.elements.namedItem('nickname').value.trim();
    const memo = form.elements.namedItem('memo').value;
    if (!nickname) {
      showFieldError(form, 'nickname', t('profile.nickname_empty'));
      return;
    }
    busy(form, async () => {
      try {
        await this.update({ nickname, memo });
        showOk(form, t('common.saved'));
      } catch (error) {
        showApiError(form, error, ['nickname', 'memo'], 'form');
      }
    });
  }

  async uploadPhoto(file) {
    const form = this.form;
    clearForm(form);
    const bar = byId('avatar-progress');
    bar.hidden = false;
    bar.value = 0;
    try {
      const { promise } = upload(file, (fraction) => { bar.value = fraction; });
      const result = await promise;
      await this.update({ avatar: result.thumb || result.url });
      showOk(form, t('profile.photo_updated'));
    } catch (error) {
      showApiError(form, error, [], 'form');
    } finally {
      bar.hidden = true;
    }
  }

  // -- blocked users ------------------------------------------------------------------

  /** Reload the blocked list (`state.blocked`: id -> public profile). */
  async loadBlocked() {
    try {
      const rows = await this.app.allPages('/contact/blocked');
      this.app.state.blocked = new Map(rows.map((u) => [u.id, u]));
      this.blockedError('');
    } catch (error) {
      this.blockedError(error.message);
    }
    this.renderBlocked();
  }

  renderBlocked() {
    const rows = [...this.app.state.blocked.values()];
    byId('blocked-empty').hidden = rows.length > 0;
    byId('blocked-list').replaceChildren(...rows.map((user) => h('li', { class: 'member', dataset: { userid: String(user.id) } },
      avatar(user, { size: 'sm' }),
      h('span', { class: 'member-name', text: user.nickname }),
      h('button', { type: 'button', class: 'button small', text: t('person.unblock'), onclick: (event) => this.unblock(user.id, event.target) }))));
  }

  async unblock(userid, button) {
    if (button) button.disabled = true;
    try {
      await api('/contact/unblock', { dstid: userid });
    } catch (error) {
      this.blockedError(error.message);
    }
    await this.loadBlocked();
  }

  blockedError(message) {
    const el = byId('blocked-error');
    el.textContent = message;
    el.hidden = !message;
  }
}
