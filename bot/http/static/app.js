// The question page: asks POST /ask, lists GET /articles (the newest few under the question box,
// so a reader can tell how fresh the articles are). No framework, no build step. Paths are
// relative to the page ("ask", not "/ask"), so the app also works under a proxy's path prefix.
// Article text only ever enters the page through textContent / text nodes, never as markup,
// so nothing in an article can inject HTML (the server's Content-Security-Policy backs this up).
"use strict";

(() => {
  const KEY_STORAGE = "bot-api-key";
  const TIMEOUT_MS = 30000;
  const QUOTES = 3;
  const NEWEST = 5; // articles the page lists under the question box, most recently dated first
  // The session's earlier questions, sent with the next one so a follow-up ("When did it begin?")
  // is read in their light; the server takes at most 10.
  const CONVERSATION_STORAGE = "bot-conversation";
  const MAX_HISTORY = 10;

  const $ = (id) => document.getElementById(id);
  const input = $("q");
  const form = $("ask-form");
  const statusLine = $("status");
  const errorBox = $("error");
  const errorText = $("error-text");
  const retryButton = $("retry");
  const results = $("results");
  const askView = $("ask-view");
  const articlesView = $("articles-view");
  const dialog = $("key-dialog");

  let inFlight = null; // {controller, timedOut}
  let lastQuestion = "";
  let articlesLoaded = false;
  let conversation = loadConversation();

  function loadConversation() {
    try {
      const kept = JSON.parse(sessionStorage.getItem(CONVERSATION_STORAGE) || "[]");
      return Array.isArray(kept) ? kept.filter((q) => typeof q === "string").slice(-MAX_HISTORY) : [];
    } catch {
      return [];
    }
  }

  function saveConversation() {
    try {
      sessionStorage.setItem(CONVERSATION_STORAGE, JSON.stringify(conversation));
    } catch {
      // storage disabled: the conversation lasts as long as the page
    }
  }

  /** "Follow-up to: …" with the latest question, or nothing when the conversation is new. */
  function showConversation() {
    const box = $("conversation");
    box.hidden = conversation.length === 0;
    $("followup-to").textContent = conversation.length ? conversation[conversation.length - 1] : "";
  }

  function remember(question) {
    if (conversation[conversation.length - 1] !== question) conversation.push(question);
    conversation = conversation.slice(-MAX_HISTORY);
    saveConversation();
    showConversation();
  }

  function startOver() {
    conversation = [];
    saveConversation();
    showConversation();
    input.focus();
  }

  /** A new element; children are nodes or strings (strings become text nodes, never markup). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  /** Only http(s) links: a `javascript:` or `data:` url in an article must never become clickable. */
  function safeUrl(url) {
    if (!url) return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function timeElement(date) {
    if (!date) return null;
    const day = /^\d{4}-\d{2}-\d{2}/.test(date) ? date.slice(0, 10) : date;
    return el("time", { datetime: date }, day);
  }

  function titleElement(article, tag) {
    const href = safeUrl(article.url);
    const title = article.title || article.id;
    return href ? el("a", { class: tag, href }, title) : el("span", { class: tag }, title);
  }

  // ---- status, errors, loading -------------------------------------------------------------

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function clearError() {
    errorBox.hidden = true;
    errorText.textContent = "";
    retryButton.hidden = true;
  }

  function showError(text, { retry = false } = {}) {
    errorText.textContent = text;
    retryButton.hidden = !retry;
    errorBox.hidden = false;
    setStatus("");
  }

  function setLoading(question) {
    results.setAttribute("aria-busy", question ? "true" : "false");
    document.body.classList.toggle("loading", Boolean(question));
    if (question) setStatus(`Searching the articles for “${question}”…`);
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch {
      // not JSON (a proxy's error page, say): fall through to the status text
    }
    return response.statusText || `HTTP ${response.status}`;
  }

  // ---- API key -----------------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch {
      return null;
    }
  }

  /** Ask for the API key in a modal dialog; resolves to the key, or null when cancelled. */
  function promptKey(problem) {
    const keyInput = $("key-input");
    const problemLine = $("key-problem");
    problemLine.textContent = problem || "";
    problemLine.hidden = !problem;
    keyInput.value = "";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          const key = keyInput.value.trim();
          keyInput.value = "";
          if (dialog.returnValue === "save" && key) {
            try {
              sessionStorage.setItem(KEY_STORAGE, key);
            } catch {
              // storage disabled: the key still works for this question
            }
            resolve(key);
          } else {
            resolve(null);
          }
        },
        { once: true },
      );
      dialog.showModal();
      keyInput.focus();
    });
  }

  $("key-cancel").addEventListener("click", () => dialog.close("cancel"));

  // ---- asking ------------------------------------------------------------------------------

  function localDay(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  }

  function questionUrl(question) {
    return `./?q=${encodeURIComponent(question)}`;
  }

  async function ask(raw, { push = true, key = storedKey(), follow = true } = {}) {
    const question = raw.trim();
    showView("ask");
    if (!question) {
      showError("Type a question first.");
      input.focus();
      return;
    }
    lastQuestion = question;
    if (push && new URLSearchParams(window.location.search).get("q") !== question) {
      history.pushState(null, "", questionUrl(question));
    }
    document.title = `${question} · Stargate Q&A`;

    if (inFlight) inFlight.controller.abort();
    const request = { controller: new AbortController(), timedOut: false };
    inFlight = request;
    const timer = setTimeout(() => {
      request.timedOut = true;
      request.controller.abort();
    }, TIMEOUT_MS);
    clearError();
    setLoading(question);

    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    // Asked today (the reader's own calendar day): "this week" in a question reads against it.
    const body = { question, k: QUOTES, asked_on: localDay(new Date()) };
    // A link or the browser's back button replays a question as it was asked, without the conversation.
    const earlier = follow ? conversation.filter((q) => q !== question) : [];
    if (earlier.length) body.history = earlier;
    let response;
    try {
      response = await fetch("ask", {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: request.controller.signal,
      });
      if (response.ok) {
        const answer = await response.json();
        if (inFlight !== request) return;
        renderAnswer(answer);
        if (follow) remember(question);
        return;
      }
    } catch (exc) {
      if (inFlight !== request) return; // a newer question replaced this one
      results.replaceChildren();
      if (request.timedOut) {
        showError(`The server did not answer within ${TIMEOUT_MS / 1000} seconds. Try again.`, { retry: true });
      } else {
        showError("Could not reach the server: it may be down or restarting. Check that it runs and try again.", {
          retry: true,
        });
      }
      return;
    } finally {
      clearTimeout(timer);
      if (inFlight === request) {
        inFlight = null;
        setLoading(null);
      }
    }
    if (lastQuestion !== question) return;
    await handleFailure(response, question, key);
  }

  async function handleFailure(response, question, key) {
    const message = await errorMessage(response);
    results.replaceChildren();
    const wait = response.headers.get("Retry-After");
    switch (response.status) {
      case 401: {
        if (key) {
          try {
            sessionStorage.removeItem(KEY_STORAGE);
          } catch {
            // nothing stored
          }
        }
        setStatus("");
        const newKey = await promptKey(key ? "That key was not accepted. Check it and try again." : "");
        if (newKey) {
          await ask(question, { push: false, key: newKey });
        } else {
          showError("This server needs an API key to answer questions.", { retry: true });
        }
        return;
      }
      case 422:
        showError(`The server could not take that question: ${message}`);
        return;
      case 429:
        showError(`Rate limited: too many questions in a short time. Try again in ${wait || "a few"} seconds.`, {
          retry: true,
        });
        return;
      case 503:
        showError(`The server is not ready to answer yet: ${message}${wait ? ` Try again in ${wait} seconds.` : ""}`, {
          retry: true,
        });
        return;
      default:
        showError(`The server answered ${response.status}: ${message}`, { retry: true });
    }
  }

  // ---- rendering answers -------------------------------------------------------------------

  /** The quote as <mark>s, one per paragraph, so blank lines between paragraphs stay unmarked;
   *  the short answer (code points [from, to) of the quote) is a <strong> inside its mark. */
  function marked(text, answer) {
    const parts = text.split(/(\n+)/).filter((part) => part !== "");
    let at = 0; // code points of the quote before this part
    const nodes = parts.map((part) => {
      const size = Array.from(part).length;
      const begin = at;
      at += size;
      if (part.startsWith("\n")) return part;
      if (!answer || answer.to <= begin || answer.from >= begin + size) return el("mark", {}, part);
      const points = Array.from(part);
      const from = Math.max(0, answer.from - begin);
      const to = Math.min(size, answer.to - begin);
      return el(
        "mark",
        {},
        points.slice(0, from).join(""),
        el("strong", { class: "answer-span" }, points.slice(from, to).join("")),
        points.slice(to).join(""),
      );
    });
    return el("span", { class: "quote" }, ...nodes);
  }

  /** Where the short answer sits in the quote, in code points; null when absent or inconsistent. */
  function answerSpan(quote) {
    const answer = quote.answer;
    if (!answer || typeof answer.text !== "string") return null;
    const from = answer.start - quote.start;
    const to = answer.end - quote.start;
    const points = Array.from(quote.text);
    if (!(from >= 0 && to > from && to <= points.length) || points.slice(from, to).join("") !== answer.text) return null;
    return { from, to };
  }

  /** The passage with the quote marked; offsets are Unicode code points, as in Python. */
  function passageWithMark(quote) {
    const points = Array.from(quote.passage);
    const answer = answerSpan(quote);
    let from = quote.start - quote.passage_start;
    let to = quote.end - quote.passage_start;
    if (from < 0 || to > points.length || points.slice(from, to).join("") !== quote.text) {
      // Offsets that disagree with the text (should not happen): find the quote instead.
      const at = quote.passage.indexOf(quote.text);
      if (at < 0) return [marked(quote.text, answer)];
      from = Array.from(quote.passage.slice(0, at)).length;
      to = from + Array.from(quote.text).length;
    }
    return [points.slice(0, from).join(""), marked(points.slice(from, to).join(""), answer), points.slice(to).join("")];
  }

  function quoteCard(quote, rank) {
    const percent = Math.round(Math.max(0, Math.min(1, Number(quote.score) || 0)) * 100);
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${percent}%`; // CSSOM, allowed by the CSP (style attributes in markup are not)
    const meta = el(
      "p",
      { class: "meta" },
      titleElement(quote.article, "source-title"),
      timeElement(quote.article.date),
      quote.article.source ? el("span", { class: "source" }, quote.article.source) : null,
      el(
        "span",
        { class: "score", title: "How confident the bot is that this sentence answers the question" },
        el("span", { class: "bar", "aria-hidden": "true" }, fill),
        `${percent}% confidence`,
      ),
    );
    return el(
      "article",
      { class: "card", "aria-label": `Quote ${rank}` },
      el("blockquote", { class: "passage", cite: safeUrl(quote.article.url) }, ...passageWithMark(quote)),
      meta,
    );
  }

  function renderAnswer(answer) {
    const cards = answer.quotes.map((quote, n) => quoteCard(quote, n + 1));
    // A follow-up says how it was read ("When did it begin? (about Microsoft, partnership, OpenAI)").
    const readAs = answer.context ? el("p", { class: "read-as" }, "Read as: ", el("q", {}, answer.context)) : "";
    if (answer.answered) {
      const count = answer.quotes.length;
      setStatus(`${count} ${count === 1 ? "quote" : "quotes"} from the articles, best first.`);
      results.replaceChildren(el("h2", { class: "visually-hidden" }, "Answer"), readAs, ...cards);
      return;
    }
    setStatus("Not found in the articles.");
    const notFound = el(
      "div",
      { class: "not-found" },
      el("h2", {}, "Not found in the articles"),
      el("p", {}, answer.message || "Nothing in the articles answers that question."),
    );
    const nearest = cards.length
      ? el(
          "section",
          { class: "nearest", "aria-labelledby": "nearest-title" },
          el("h3", { id: "nearest-title" }, "Nearest passages (they do not answer it)"),
          ...cards,
        )
      : null;
    results.replaceChildren(readAs, notFound, nearest || "");
  }

  // ---- articles ----------------------------------------------------------------------------

  async function loadArticles() {
    const status = $("articles-status");
    const list = $("articles-list");
    status.textContent = "Loading the articles…";
    let response;
    try {
      response = await fetch("articles", { headers: { Accept: "application/json" } });
    } catch {
      status.textContent = "Could not reach the server: it may be down or restarting.";
      return;
    }
    if (!response.ok) {
      status.textContent = `The articles could not be listed: ${await errorMessage(response)}`;
      return;
    }
    const body = await response.json();
    const passages = body.articles.reduce((sum, a) => sum + a.passages, 0);
    status.textContent = `${body.count} ${body.count === 1 ? "article" : "articles"}, ${passages} passages.`;
    list.replaceChildren(
      ...body.articles.map((article) => {
        const href = safeUrl(article.url);
        return el(
          "li",
          { class: "article" },
          el("h2", {}, titleElement(article, "article-title")),
          el(
            "p",
            { class: "meta" },
            timeElement(article.date),
            article.source ? el("span", { class: "source" }, article.source) : null,
            el("span", { class: "passages" }, `${article.passages} ${article.passages === 1 ? "passage" : "passages"}`),
          ),
          href ? el("p", { class: "url" }, el("a", { href, tabindex: "-1" }, article.url)) : null,
        );
      }),
    );
    articlesLoaded = true;
  }

  /** "The bot knows N articles" and the newest few with their dates; stays hidden when the list
   *  cannot be had (asking says why: a missing index, a server that is down). */
  async function loadFreshness() {
    let body;
    try {
      const response = await fetch(`articles?newest=${NEWEST}`, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      body = await response.json();
    } catch {
      return;
    }
    const count = `${body.count} ${body.count === 1 ? "article" : "articles"}`;
    $("freshness-count").textContent = body.articles.length
      ? `The bot knows ${count}. The newest:`
      : `The bot knows ${count}.`;
    $("freshness-list").replaceChildren(
      ...body.articles.map((article) =>
        el(
          "li",
          {},
          article.date ? timeElement(article.date) : el("span", { class: "undated" }, "no date"),
          " ",
          titleElement(article, "fresh-title"),
        ),
      ),
    );
    $("freshness").hidden = false;
  }

  // ---- views and the URL -------------------------------------------------------------------

  function showView(view) {
    const articles = view === "articles";
    askView.hidden = articles;
    articlesView.hidden = !articles;
    for (const link of document.querySelectorAll("nav a[data-view]")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (articles) {
      document.title = "Articles · Stargate Q&A";
      if (!articlesLoaded) loadArticles();
    }
  }

  /** Show what the address says: `/?view=articles`, `/?q=question` or the empty page. */
  function route() {
    const params = new URLSearchParams(window.location.search);
    if (params.get("view") === "articles") {
      showView("articles");
      return;
    }
    showView("ask");
    const question = (params.get("q") || "").trim();
    if (question && question !== lastQuestion) {
      input.value = question;
      ask(question, { push: false, follow: false });
    } else if (!question) {
      // Back to the empty page: forget the last answer too.
      if (inFlight) inFlight.controller.abort();
      lastQuestion = "";
      input.value = "";
      results.replaceChildren();
      clearError();
      setStatus("");
      document.title = "Stargate Q&A";
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(input.value);
  });

  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => {
      input.value = button.textContent;
      ask(input.value);
    });
  }

  $("start-over").addEventListener("click", startOver);

  retryButton.addEventListener("click", () => {
    if (lastQuestion) ask(lastQuestion, { push: false });
  });

  for (const link of document.querySelectorAll("nav a[data-view]")) {
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return; // new tab etc.
      event.preventDefault();
      const view = link.dataset.view;
      const target = view === "articles" ? "./?view=articles" : lastQuestion ? questionUrl(lastQuestion) : "./";
      history.pushState(null, "", target);
      showView(view);
      if (view === "ask") input.focus();
    });
  }

  window.addEventListener("popstate", route);

  // `/` jumps to the question box from anywhere except a text field (where it is a character).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || dialog.open) return;
    const target = event.target;
    if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)))
      return;
    event.preventDefault();
    if (askView.hidden) {
      history.pushState(null, "", lastQuestion ? questionUrl(lastQuestion) : "./");
      showView("ask");
    }
    input.focus();
    input.select();
  });

  showConversation();
  route();
  loadFreshness();
  if (!askView.hidden) input.focus();
})();
