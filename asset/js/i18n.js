// A stand-in for the client's string tables (issue 24's shared i18n contract): `t(key,
// params)` and `currentLanguage()`, with the strings of the messenger-habits work in both
// languages. The language work replaces this module with the real one, whose tables
// (asset/i18n/en.json, asset/i18n/zh-CN.json) take these keys over.

const STRINGS = {
  en: {
    'chat.jump_to_latest': 'Jump to latest',
    'chat.jump_to_latest_new': '{count} new',
    'chat.link_opens': '{url} (opens in a new tab)',
    'chat.presence_unknown': 'status unknown while you are offline',
    'chat.unread_divider': '{count} unread messages',
    'chat.unread_divider_one': '1 unread message',
    'chats.empty': 'No chats yet. Ask a friend by their mobile number above, or create or join a group on the Groups tab.',
    'chats.tab': 'Chats',
    'group.member_count': '{count} members',
    'group.member_count_one': '1 member',
    'group.member_joined': '{name} joined the group',
    'group.member_left': '{name} left the group',
    'group.member_removed': '{name} was removed from the group',
    'groups.list_label': 'My groups',
    'outbox.unsent_warning': 'Messages you typed are not sent yet. They are kept on this device and sent when you are back.',
    'profile.account': 'Account',
    'profile.logout_cancel': 'Stay logged in',
    'profile.logout_confirm': 'Log out',
    'profile.logout_text': 'You will need your mobile number and password to log in again.',
    'profile.logout_title': 'Log out of fastim?',
    'profile.logout_unsent': '{count} messages are not sent yet: they stay on this device and are sent when you log in again.',
  },
  'zh-CN': {
    'chat.jump_to_latest': '回到最新消息',
    'chat.jump_to_latest_new': '{count} 条新消息',
    'chat.link_opens': '{url}（在新标签页打开）',
    'chat.presence_unknown': '你已离线，对方状态未知',
    'chat.unread_divider': '以下为 {count} 条未读消息',
    'chat.unread_divider_one': '以下为 1 条未读消息',
    'chats.empty': '还没有聊天。在上方输入手机号添加好友，或在“群聊”页创建、加入群聊。',
    'chats.tab': '聊天',
    'group.member_count': '{count} 位成员',
    'group.member_count_one': '1 位成员',
    'group.member_joined': '{name} 加入了群聊',
    'group.member_left': '{name} 退出了群聊',
    'group.member_removed': '{name} 被移出了群聊',
    'groups.list_label': '我的群聊',
    'outbox.unsent_warning': '还有消息没有发出。它们保存在本设备上，恢复连接后会自动发送。',
    'profile.account': '账号',
    'profile.logout_cancel': '取消',
    'profile.logout_confirm': '退出登录',
    'profile.logout_text': '再次登录需要手机号和密码。',
    'profile.logout_title': '确定退出登录？',
    'profile.logout_unsent': '还有 {count} 条消息未发出：它们保存在本设备上，下次登录后发送。',
  },
};

/** "en" or "zh-CN": the document's language (set by the server), English by default. */
export function currentLanguage() {
  const lang = (document.documentElement.lang || 'en').toLowerCase();
  return lang.startsWith('zh') ? 'zh-CN' : 'en';
}

/** The string `key` in the current language, with each `{name}` replaced from `params`. */
export function t(key, params = {}) {
  const table = STRINGS[currentLanguage()];
  const text = table[key] ?? STRINGS.en[key];
  if (text === undefined) throw new Error(`no string ${key}`);
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}
