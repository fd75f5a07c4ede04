// The emoji picker's set: plain Unicode text, so it needs no images and survives every
// round trip as part of the message. Grouped like a phone keyboard.
import { t } from './i18n.js';

export const EMOJI = [
  [t('emoji.smileys'), '😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😗 😚 😋 😛 😜 🤪 😝 🤗 🤭 🤫 🤔 🤐 🤨 😐 😑 😶 😏 😒 🙄 😬 😌 😔 😪 😴 😷 🤒 🤕 🤢 🥵 🥶 😵 🤯 🤠 🥳 😎 🤓 🧐 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 💀 💩 🤡 👻 👽 🤖'],
  [t('emoji.gestures'), '👋 🤚 ✋ 🖖 👌 🤌 🤏 ✌️ 🤞 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ 👍 👎 ✊ 👊 👏 🙌 👐 🤲 🤝 🙏 💪 👍🏻 👍🏽 👍🏿 👋🏼 🙏🏾 👩‍💻 👨‍🍳 🧑‍🚀 👩‍👩‍👧 🏃‍♀️'],
  [t('emoji.hearts'), '❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❤️‍🔥 ❣️ 💕 💞 💓 💗 💖 💘 💝 💯 ✨ 🔥 ⭐ 🌟 💫 🎉 🎊 🎈'],
  [t('emoji.nature'), '🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🐦 🦆 🦉 🐝 🦋 🐌 🐢 🐍 🐙 🐬 🐳 🌸 🌹 🌻 🌷 🌱 🌲 🍀 🍁 🌈 ☀️ 🌙 ⛄ 🌊'],
  [t('emoji.food'), '🍏 🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🍒 🍑 🥭 🍍 🥝 🍅 🥑 🥕 🌽 🍞 🧀 🍳 🍔 🍟 🍕 🌭 🌮 🍜 🍣 🍱 🥟 🍦 🍰 🎂 🍫 🍩 🍪 ☕ 🍵 🧋 🍺 🍷 🥂'],
  [t('emoji.things'), '⚽ 🏀 🏈 ⚾ 🎾 🏐 🎱 🏓 🎮 🎲 🎯 🎸 🎹 🎧 🎤 🎬 📷 💻 📱 ⌚ 💡 📚 ✏️ 📌 📎 ✂️ 🔑 🎁 🏠 🚗 🚲 ✈️ 🚀 ⏰ ☂️ 🌍 🏳️‍🌈'],
].map(([name, list]) => [name, list.split(' ')]);
