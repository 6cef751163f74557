// The agent console's extras: a live SMS segment counter, transfer countdowns,
// an optional beep when new work arrives, and polled lists that keep still.
// Every action works without this file (plain forms); htmx does the polling.
(function () {
  "use strict";

  // Segments: keep in step with campaigns/segments.py.
  var GSM7_BASIC =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM7_EXTENSION = "\f^{}\\[~]|€";

  function smsSegments(text) {
    var gsm = true;
    var septets = 0;
    for (var ch of text) {
      if (GSM7_EXTENSION.indexOf(ch) !== -1) septets += 2;
      else if (GSM7_BASIC.indexOf(ch) !== -1) septets += 1;
      else { gsm = false; break; }
    }
    // UCS-2 counts UTF-16 units, which is what String.length counts.
    var characters = gsm ? septets : text.length;
    var single = gsm ? 160 : 70;
    var part = gsm ? 153 : 67;
    var segments = characters <= single ? (characters ? 1 : 0) : Math.ceil(characters / part);
    var perSegment = characters <= single ? single : part;
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      characters: characters,
      segments: segments,
      remaining: Math.max(segments, 1) * perSegment - characters,
    };
  }

  function plural(n) { return n === 1 ? "" : "s"; }

  // The same words as templates/campaigns/agent/_segments.html.
  function describeSegments(c) {
    return c.characters + " character" + plural(c.characters) + " · " +
      c.segments + " SMS segment" + plural(c.segments) + " · " +
      c.encoding + ", " + c.remaining + " left in this segment";
  }

  function updateCounter(textarea) {
    var counter = document.getElementById(textarea.dataset.smsCounter);
    // Browsers send line breaks as CR LF: count what the customer will get.
    if (counter) counter.textContent = describeSegments(smsSegments(textarea.value.replace(/\r?\n/g, "\r\n")));
  }

  // Countdowns: the server renders the seconds left; polling corrects any drift.
  function clock(seconds) {
    var s = seconds % 60;
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      var left = Math.max(0, parseInt(el.dataset.secondsLeft, 10) - 1);
      el.dataset.secondsLeft = String(left);
      el.textContent = clock(left);
    });
  }

  // Sound: off unless the agent ticks the box; the choice is kept in this browser.
  var SOUND_KEY = "contactcenter.agent.sound";
  var audio = null;

  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }

  function beep() {
    var AudioContext = window.AudioContext || window.webkitAudioContext;
    if (!soundOn() || !AudioContext) return;
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    var now = audio.currentTime;
    var oscillator = audio.createOscillator();
    var gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.25, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.35);
    oscillator.connect(gain);
    gain.connect(audio.destination);
    oscillator.start(now);
    oscillator.stop(now + 0.4);
  }

  // New work: an item (assignment, offer, ring-all conversation) not on screen before.
  var seen = new Set();

  function alertIds() {
    var ids = new Set();
    document.querySelectorAll("[data-alert-id]").forEach(function (el) { ids.add(el.dataset.alertId); });
    return ids;
  }

  function atBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 40; }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-sms-counter]").forEach(function (textarea) {
      textarea.addEventListener("input", function () { updateCounter(textarea); });
      updateCounter(textarea);
    });
    document.querySelectorAll("[data-autoscroll]").forEach(function (el) { el.scrollTop = el.scrollHeight; });
    var toggle = document.querySelector("[data-sound-toggle]");
    if (toggle) {
      toggle.checked = soundOn();
      toggle.addEventListener("change", function () {
        try { window.localStorage.setItem(SOUND_KEY, toggle.checked ? "on" : "off"); } catch (e) { /* private mode */ }
        beep(); // Also unlocks audio: browsers allow it only after a gesture like this one.
      });
    }
    seen = alertIds();
    window.setInterval(tick, 1000);
  });

  // A poll that brings the same HTML is not swapped, so selections, focus and
  // the buttons under the pointer stay put.
  var lastResponse = new WeakMap();

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (event.detail.serverResponse === lastResponse.get(target)) {
      event.detail.shouldSwap = false;
      return;
    }
    lastResponse.set(target, event.detail.serverResponse);
    target.dataset.wasAtBottom = String(atBottom(target));
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.hasAttribute("data-autoscroll") && target.dataset.wasAtBottom === "true") {
      target.scrollTop = target.scrollHeight;
    }
    var now = alertIds();
    var fresh = false;
    now.forEach(function (id) { if (!seen.has(id)) fresh = true; });
    seen = now;
    if (fresh) beep();
  });
})();
