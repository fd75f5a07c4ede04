// A group's sheet: its members (owner first, online dots for friends), and leaving or,
// for the owner, dissolving it. Owners and admins also see the group's settings, invite
// links, join requests and bans, and may remove (or ban) members; the owner names admins.
import { api, get } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar } from '../format.js';
import { t } from '../i18n.js';
import { icon } from '../icons.js';

export class MembersDialog {
  constructor(app) {
    this.app = app;
    this.dialog = byId('members-dialog');
    this.groupId = null;
    byId('members-close').append(icon('close'));
    byId('members-close').addEventListener('click', () => this.dialog.close());
    byId('leave-group').addEventListener('click', () => this.leave());
    byId('dissolve-group').addEventListener('click', () => this.dissolve());
    this.dialog.addEventListener('close', () => { this.groupId = null; });
    this.role = 'member';
    byId('group-settings').addEventListener('submit', (event) => {
      event.preventDefault();
      this.saveSettings();
    });
    byId('invite-create').addEventListener('click', () => this.createInvite());
    byId('invite-copy').addEventListener('click', () => {
      const input = byId('invite-link');
      input.select();
      navigator.clipboard?.writeText(input.value).catch(() => {});
    });
  }

  /** A group notice (cmd 71) about the group on screen: show it afresh. */
  refreshIf(groupId) {
    if (this.dialog.open && this.groupId === groupId) this.show(groupId);
  }

  async loadAdmin(groupId) {
    let info;
    try {
      info = await get('/contact/groupinfo', { groupid: groupId });
    } catch {
      this.role = 'member';
      byId('group-admin').hidden = true;
      return;
    }
    if (this.groupId !== groupId) return;
    this.role = info.role;
    const moderator = info.role === 'owner' || info.role === 'admin';
    byId('group-admin').hidden = !moderator;
    byId('group-visibility').value = info.visibility;
    byId('group-join-policy').value = info.join;
    byId('group-history').value = info.history;
    for (const id of ['group-visibility', 'group-join-policy', 'group-history', 'group-settings-save']) {
      byId(id).disabled = info.role !== 'owner';
    }
    if (!moderator) return;
    const [invites, requests, bans] = await Promise.all([
      get('/contact/invites', { groupid: groupId }),
      get('/contact/joinrequests', { groupid: groupId }),
      get('/contact/bans', { groupid: groupId }),
    ]);
    if (this.groupId !== groupId) return;
    byId('invite-list').replaceChildren(...invites.rows.map((invite) => h('li', { class: 'invite', dataset: { inviteid: String(invite.id) } },
      h('span', { text: invite.uses ? t('invite.used_of', { id: invite.id, used: invite.used, uses: invite.uses })
        : t('invite.used', { id: invite.id, used: invite.used }) }),
      h('button', { type: 'button', class: 'button small danger', text: t('invite.revoke'),
        onclick: () => this.act('/contact/revokeinvite', { groupid: groupId, inviteid: invite.id }) }))));
    byId('join-requests').replaceChildren(...requests.rows.map((user) => h('li', { class: 'member', dataset: { userid: String(user.id) } },
      avatar(user, { size: 'sm' }),
      h('span', { class: 'member-name', text: user.nickname }),
      h('button', { type: 'button', class: 'button small primary', text: t('group_admin.approve'),
        onclick: () => this.act('/contact/approvejoin', { groupid: groupId, memberid: user.id }) }),
      h('button', { type: 'button', class: 'button small', text: t('requests.decline'),
        onclick: () => this.act('/contact/declinejoin', { groupid: groupId, memberid: user.id }) }))));
    byId('ban-list').replaceChildren(...bans.rows.map((user) => h('li', { class: 'member', dataset: { userid: String(user.id) } },
      avatar(user, { size: 'sm' }),
      h('span', { class: 'member-name', text: user.nickname }),
      h('button', { type: 'button', class: 'button small', text: t('group_admin.unban'),
        onclick: () => this.act('/contact/unban', { groupid: groupId, memberid: user.id }) }))));
    this.renderList(this.app.state.members.get(groupId) || []);
  }

  async act(path, values) {
    this.error('');
    try {
      await api(path, values);
    } catch (error) {
      this.error(error.message);
      return;
    }
    if (this.groupId === values.groupid) this.show(values.groupid);
  }

  async saveSettings() {
    const id = this.groupId;
    try {
      await api('/contact/groupsettings', {
        groupid: id,
        visibility: byId('group-visibility').value,
        join: byId('group-join-policy').value,
        history: byId('group-history').value,
      });
    } catch (error) {
      this.error(error.message);
      return;
    }
    const ok = byId('group-settings-ok');
    ok.textContent = t('common.saved');
    ok.hidden = false;
  }

  async createInvite() {
    try {
      const invite = await api('/contact/invite', { groupid: this.groupId });
      byId('invite-link').value = new URL(invite.url, location.origin).href;
      byId('invite-new').hidden = false;
      this.loadAdmin(this.groupId);
    } catch (error) {
      this.error(error.message);
    }
  }

  async show(groupId) {
    this.groupId = groupId;
    const group = this.app.state.groups.get(groupId);
    byId('members-title').textContent = group ? group.name : t('members.title');
    byId('members-memo').textContent = group?.memo || '';
    byId('members-memo').hidden = !group?.memo;
    this.error('');
    const dissolve = byId('dissolve-group');
    dissolve.hidden = !group || group.ownerid !== this.app.state.me.id;
    dissolve.textContent = t('members.dissolve');
    delete dissolve.dataset.confirm;
    byId('group-settings-ok').hidden = true;
    this.renderList(this.app.state.members.get(groupId) || []);
    if (!this.dialog.open) this.dialog.showModal();
    try {
      this.renderList(await this.app.loadMembers(groupId));
      await this.loadAdmin(groupId);
    } catch (error) {
      this.error(error.message);
    }
  }

  renderList(rows) {
    const { state } = this.app;
    byId('member-list').replaceChildren(...rows.map((member) => {
      const friend = state.isFriend(member.id);
      const online = member.id === state.me.id ? true : friend ? state.isOnline(member.id) : undefined;
      return h('li', { class: 'member', dataset: { userid: String(member.id) } },
        avatar(member, { size: 'sm', online }),
        h('span', { class: 'member-name', text: member.nickname }),
        member.id === state.me.id ? h('span', { class: 'tag', text: t('members.you') }) : null,
        member.role === 'owner' ? h('span', { class: 'tag owner', text: t('members.owner') }) : null,
        member.role === 'admin' ? h('span', { class: 'tag admin', text: t('members.admin') }) : null,
        this.moderation(member));
    }));
  }

  /** The buttons a moderator has on a member's row: remove, ban, and for the owner, roles. */
  moderation(member) {
    const { role } = this;
    const me = this.app.state.me.id;
    const outranks = role === 'owner' ? member.role !== 'owner' : role === 'admin' && member.role === 'member';
    if (member.id === me || !outranks) return null;
    const groupid = this.groupId;
    const target = { groupid, memberid: member.id };
    return h('span', { class: 'member-actions' },
      role === 'owner' ? h('button', { type: 'button', class: 'button small', dataset: { action: 'role' },
        text: member.role === 'admin' ? t('members.make_member') : t('members.make_admin'),
        onclick: () => this.act('/contact/setrole', { ...target, role: member.role === 'admin' ? 'member' : 'admin' }) }) : null,
      h('button', { type: 'button', class: 'button small danger', dataset: { action: 'remove' }, text: t('members.remove'),
        onclick: () => this.act('/contact/kick', target) }),
      h('button', { type: 'button', class: 'button small danger', dataset: { action: 'ban' }, text: t('members.ban'),
        onclick: () => this.act('/contact/kick', { ...target, ban: 1 }) }));
  }

  error(message) {
    const el = byId('members-error');
    el.textContent = message;
    el.hidden = !message;
  }

  async leave() {
    const id = this.groupId;
    try {
      await api('/contact/leavecommunity', { dstid: id });
    } catch (error) {
      this.error(error.message);
      return;
    }
    this.dialog.close();
    this.app.forgetGroup(id);
    this.app.invalidate('lists');
  }

  async dissolve() {
    const button = byId('dissolve-group');
    if (!button.dataset.confirm) {
      // Two steps instead of a blocking confirm(): the button asks once more.
      button.dataset.confirm = 'yes';
      button.textContent = t('members.confirm_dissolve');
      return;
    }
    const id = this.groupId;
    try {
      await api('/contact/dissolvecommunity', { dstid: id });
    } catch (error) {
      this.error(error.message);
      return;
    }
    this.dialog.close();
    this.app.forgetGroup(id);
    this.app.invalidate('lists');
  }
}
