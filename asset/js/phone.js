// Phone numbers as people type them: the server accepts `+86 138 0000 0001`,
// `138-0000-0001` and `13800000001` alike and stores one canonical form
// (fastim/store/phones.py, docs/api.md "Phone numbers"); the browser checks only
// that what was typed can be one, so a typo is said before the round trip.

const SEPARATORS = /[\s\-./()]+/g;

/** Whether `value` looks like a phone number: digits with separators, `+` or `00` first. */
export function looksLikePhone(value) {
  const compact = String(value || '').normalize('NFKC').replace(SEPARATORS, '');
  return /^\+?[0-9]{5,17}$/.test(compact);
}
