// The emoji picker's set: plain Unicode text, so it needs no images and survives every
// round trip as part of the message. Grouped like a phone keyboard.
export const EMOJI = [
  ['Smileys', '😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 😉 😊 😇 🥰 😍 🤩 😘 😗 😚 😋 😛 😜 🤪 😝 🤗 🤭 🤫 🤔 🤐 🤨 😐 😑 😶 😏 😒 🙄 😬 😌 😔 😪 😴 😷 🤒 🤕 🤢 🥵 🥶 😵 🤯 🤠 🥳 😎 🤓 🧐 😕 😟 🙁 😮 😯 😲 😳 🥺 😦 😧 😨 😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 💀 💩 🤡 👻 👽 🤖'],
  ['Gestures', '👋 🤚 ✋ 🖖 👌 🤌 🤏 ✌️ 🤞 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ 👍 👎 ✊ 👊 👏 🙌 👐 🤲 🤝 🙏 💪 👍🏻 👍🏽 👍🏿 👋🏼 🙏🏾 👩‍💻 👨‍🍳 🧑‍🚀 👩‍👩‍👧 🏃‍♀️'],
  ['Hearts', '❤️ 🧡 💛 💚 💙 💜 🖤 🤍 🤎 💔 ❤️‍🔥 ❣️ 💕 💞 💓 💗 💖 💘 💝 💯 ✨ 🔥 ⭐ 🌟 💫 🎉 🎊 🎈'],
  ['Nature', '🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🐦 🦆 🦉 🐝 🦋 🐌 🐢 🐍 🐙 🐬 🐳 🌸 🌹 🌻 🌷 🌱 🌲 🍀 🍁 🌈 ☀️ 🌙 ⛄ 🌊'],
  ['Food', '🍏 🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🍒 🍑 🥭 🍍 🥝 🍅 🥑 🥕 🌽 🍞 🧀 🍳 🍔 🍟 🍕 🌭 🌮 🍜 🍣 🍱 🥟 🍦 🍰 🎂 🍫 🍩 🍪 ☕ 🍵 🧋 🍺 🍷 🥂'],
  ['Things', '⚽ 🏀 🏈 ⚾ 🎾 🏐 🎱 🏓 🎮 🎲 🎯 🎸 🎹 🎧 🎤 🎬 📷 💻 📱 ⌚ 💡 📚 ✏️ 📌 📎 ✂️ 🔑 🎁 🏠 🚗 🚲 ✈️ 🚀 ⏰ ☂️ 🌍 🏳️‍🌈'],
].map(([name, list]) => [name, list.split(' ')]);
