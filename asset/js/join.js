// The page of an invite link (/join/CODE): the group's name and member count come with
// the page; Join asks /contact/joinbyinvite and opens the group. Not logged in: the
// login page first, which comes back here.
import { api } from './api.js';
import { t } from './i18n.js';

const root = document.getElementById('join');
const button = document.getElementById('join-button');

function show(id, text) {
  const el = document.getElementById(id);
  el.textContent = text;
  el.hidden = !text;
}

if (root && button) {
  const code = root.dataset.code;
  button.addEventListener('click', async () => {
    if (root.dataset.loggedIn !== 'yes') {
      location.assign(`/login?next=${encodeURIComponent(`/join/${code}`)}`);
      return;
    }
    button.disabled = true;
    show('join-error', '');
    try {
      const group = await api('/contact/joinbyinvite', { code });
      if (group.status === 'requested') {
        show('join-status', t('groups.join_requested'));
        return;
      }
      location.assign(`/chat#/g/${group.id}`);
    } catch (error) {
      if (error.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(`/join/${code}`)}`);
        return;
      }
      if (error.status === 409) {
        location.assign('/chat');
        return;
      }
      show('join-error', error.message);
      button.disabled = false;
    }
  });
}
