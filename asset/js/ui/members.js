// A group's sheet: its members (owner first, online dots for friends), and leaving or,
// for the owner, dissolving it.
import { api } from '../api.js';
import { byId, h } from '../dom.js';
import { avatar } from '../format.js';
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
  }

  async show(groupId) {
    this.groupId = groupId;
    const group = this.app.state.groups.get(groupId);
    byId('members-title').textContent = group ? group.name : 'Members';
    byId('members-memo').textContent = group?.memo || '';
    byId('members-memo').hidden = !group?.memo;
    this.error('');
    const dissolve = byId('dissolve-group');
    dissolve.hidden = !group || group.ownerid !== this.app.state.me.id;
    dissolve.textContent = 'Dissolve group';
    delete dissolve.dataset.confirm;
    this.renderList(this.app.state.members.get(groupId) || []);
    if (!this.dialog.open) this.dialog.showModal();
    try {
      this.renderList(await this.app.loadMembers(groupId));
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
        member.id === state.me.id ? h('span', { class: 'tag', text: 'you' }) : null,
        member.role === 'owner' ? h('span', { class: 'tag owner', text: 'owner' }) : null);
    }));
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
      button.textContent = 'Click again to dissolve for everyone';
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
