// The browser phone: send as a fake contact, show the replies. Every message text is put in
// the page with textContent, never as HTML: bodies come from anyone who can text the number.
"use strict";

// GSM 03.38, as in textback/encoding.py (a browser test checks that both count alike).
const GSM_BASIC = new Set(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
);
const GSM_EXTENDED = new Set("^{}\\[~]|€\f");

/** How a phone sends `text`: encoding, units used, segments billed, and the units allowed. */
function segments(text) {
  const chars = Array.from(text);
  const gsm = chars.every((ch) => GSM_BASIC.has(ch) || GSM_EXTENDED.has(ch));
  let units, single, multi;
  if (gsm) {
    units = chars.reduce((sum, ch) => sum + (GSM_EXTENDED.has(ch) ? 2 : 1), 0);
    [single, multi] = [160, 153];
  } else {
    units = text.length; // UTF-16 code units: an emoji outside the BMP takes two
    [single, multi] = [70, 67];
  }
  const count = units <= single ? 1 : Math.ceil(units / multi);
  return {
    encoding: gsm ? "GSM-7" : "UCS-2",
    units: units,
    segments: count,
    limit: count === 1 ? single : multi * count,
  };
}
window.textbackSegments = segments;

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function picture(url) {
  const img = element("img", "picture");
  img.alt = "picture";
  img.referrerPolicy = "no-referrer";
  img.loading = "lazy";
  // Only web addresses: a javascript: or other scheme never becomes an image source.
  if (/^(https?:\/\/|\/)/i.test(url)) img.src = url;
  return img;
}

function bubble(side, text, media, meta) {
  const node = element("div", `bubble ${side}`);
  for (const url of media || []) node.append(picture(url));
  if (text) node.append(element("p", "text", text));
  if (meta) node.append(element("span", "meta", meta));
  return node;
}

function renderExchange(item) {
  const group = element("div", "exchange");
  if (item.sent) {
    const sent = item.sent;
    const meta = `${sent.encoding} · ${plural(sent.segments, "segment")}`;
    group.append(bubble("me", sent.body, sent.media, meta));
  }
  for (const reply of item.replies) {
    group.append(bubble("them", reply.text, reply.media));
  }
  if (item.sent && item.replies.length === 0) {
    group.append(element("p", "note", item.note || "(no reply)"));
  }
  if (item.twiml) group.append(element("pre", "twiml", item.twiml));
  return group;
}

document.addEventListener("DOMContentLoaded", () => {
  const device = document.querySelector(".device");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const thread = document.getElementById("thread");
  const form = document.getElementById("composer");
  const body = document.getElementById("body");
  const counter = document.getElementById("counter");
  const error = document.getElementById("error");
  const send = document.getElementById("send");
  const attach = document.getElementById("attach");
  const attachment = document.getElementById("attachment");
  const mediaUrl = document.getElementById("media-url");
  const twimlToggle = document.getElementById("twiml-toggle");
  const contacts = Array.from(document.querySelectorAll(".contact"));
  let contact = (contacts.find((b) => b.getAttribute("aria-pressed") === "true") || contacts[0])
    .dataset.number;

  function showError(message) {
    error.textContent = message;
    error.hidden = !message;
  }

  function scrollDown() {
    thread.scrollTop = thread.scrollHeight;
  }

  function updateCounter() {
    const info = segments(body.value);
    counter.textContent =
      `${info.units}/${info.limit} · ${info.encoding} · ${plural(info.segments, "segment")}`;
    counter.dataset.encoding = info.encoding;
    counter.dataset.segments = String(info.segments);
  }

  async function loadHistory() {
    thread.replaceChildren();
    const url = `${device.dataset.historyUrl}?from=${encodeURIComponent(contact)}`;
    const answer = await fetch(url, { credentials: "same-origin" });
    if (!answer.ok) {
      showError(`Could not load the conversation (${answer.status}).`);
      return;
    }
    const data = await answer.json();
    thread.replaceChildren(...data.exchanges.map(renderExchange));
    thread.dataset.loaded = contact;
    scrollDown();
  }

  async function submit() {
    const text = body.value;
    const media = mediaUrl.value.trim() ? [mediaUrl.value.trim()] : [];
    if (!text && media.length === 0) return;
    showError("");
    send.disabled = true;
    const pending = bubble("me pending", text, media, "sending…");
    thread.append(pending);
    scrollDown();
    try {
      const answer = await fetch(device.dataset.sendUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ from: contact, body: text, media: media }),
      });
      const data = await answer.json().catch(() => ({ error: `HTTP ${answer.status}` }));
      pending.remove();
      if (!answer.ok) {
        showError(data.error || `HTTP ${answer.status}`);
        return;
      }
      thread.append(renderExchange(data.exchange));
      body.value = "";
      mediaUrl.value = "";
      updateCounter();
      scrollDown();
    } catch (exc) {
      pending.remove();
      showError(`Could not send: ${exc}`);
    } finally {
      send.disabled = false;
      body.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  body.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  body.addEventListener("input", updateCounter);
  attach.addEventListener("click", () => {
    attachment.hidden = !attachment.hidden;
    attach.setAttribute("aria-pressed", String(!attachment.hidden));
    if (!attachment.hidden) mediaUrl.focus();
  });
  twimlToggle.addEventListener("click", () => {
    const on = document.body.classList.toggle("show-twiml");
    twimlToggle.setAttribute("aria-pressed", String(on));
  });
  for (const button of contacts) {
    button.addEventListener("click", () => {
      contacts.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      contact = button.dataset.number;
      history.replaceState(null, "", `?from=${encodeURIComponent(contact)}`);
      showError("");
      loadHistory();
    });
  }

  updateCounter();
  loadHistory();
  body.focus();
});
