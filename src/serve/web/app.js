// The chat page: keeps the conversation, streams each answer from /v1/chat/completions (SSE) into the page,
// shows the tokens per second, and lists the nodes serving the model from /health. No external scripts.
'use strict';
const $ = (id) => document.getElementById(id);
const history = [];
let model = null;
let controller = null;

$('api_key').value = localStorage.getItem('mlxd_api_key') || '';
$('api_key').addEventListener('change', () => { localStorage.setItem('mlxd_api_key', $('api_key').value); loadModel(); });

function headers() {
  const h = { 'Content-Type': 'application/json' };
  if ($('api_key').value) h.Authorization = 'Bearer ' + $('api_key').value;
  return h;
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = 'msg ' + role;
  div.textContent = text;
  $('log').appendChild(div);
  $('log').scrollTop = $('log').scrollHeight;
  return div;
}

async function loadModel() {
  try {
    const r = await fetch('/v1/models', { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    model = j.data[0].id;
    $('model').textContent = model;
  } catch (e) {
    $('model').textContent = 'unavailable: ' + e.message;
    setTimeout(loadModel, 2000);
  }
}

// "0-5 (embedding, head)": a node's layers as /health gives them (end exclusive), as the plan names them.
function layersText(l) {
  if (!l) return '-';
  const roles = [l.embedding && 'embedding', l.head && 'head'].filter(Boolean);
  return (l.end > l.begin ? l.begin + '-' + (l.end - 1) : 'no layers') + (roles.length ? ' (' + roles.join(', ') + ')' : '');
}

// The cluster view, every 2 s: the workers with `mlxd serve --workers`, else this server as the one node.
async function refreshCluster() {
  try {
    const r = await fetch('/health');
    const h = await r.json();
    const nodes = h.workers || (h.node ? [{ address: location.host, ...h.node }] : []);
    const rows = $('nodes').tBodies[0];
    rows.textContent = '';
    for (const n of nodes) {
      const tr = rows.insertRow();
      tr.className = 'node ' + n.status;
      tr.dataset.status = n.status;
      if (n.error) tr.title = n.error;
      for (const text of [n.address, layersText(n.layers), n.status, n.sequences ?? '-']) tr.insertCell().textContent = text;
    }
    $('cluster_status').textContent =
      (h.workers ? 'cluster: ' : 'single node: ') + h.status + (h.plan ? ' · plan ' + h.plan : '') +
      (h.replans ? ' · ' + h.replans + ' re-plan' + (h.replans > 1 ? 's' : '') : '');
  } catch (e) {
    $('cluster_status').textContent = 'health unavailable: ' + e.message;
  } finally {
    setTimeout(refreshCluster, 2000);
  }
}

function busy(on) {
  $('send').disabled = on;
  $('stop').disabled = !on;
}

async function send(text) {
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const out = addMessage('assistant', '');
  out.dataset.state = 'streaming';
  controller = new AbortController();
  busy(true);
  let answer = '';
  let tokens = 0;
  let start = 0;
  try {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), signal: controller.signal,
      body: JSON.stringify({
        model, messages: history, stream: true, stream_options: { include_usage: true },
        temperature: Number($('temperature').value), max_tokens: Number($('max_tokens').value),
      }),
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : r.statusText);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const chunk = JSON.parse(event.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        const delta = chunk.choices.length ? chunk.choices[0].delta : null;
        if (delta && delta.content) {
          if (!start) start = performance.now();
          else tokens += 1;
          answer += delta.content;
          out.textContent = answer;
          $('log').scrollTop = $('log').scrollHeight;
          const s = (performance.now() - start) / 1000;
          if (s > 0) $('speed').textContent = (tokens / s).toFixed(1) + ' tokens/s';
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') {
      out.className = 'msg error';
      out.textContent = (answer ? answer + '\n' : '') + 'error: ' + e.message;
    }
  } finally {
    history.push({ role: 'assistant', content: answer });
    out.dataset.state = 'done';
    controller = null;
    busy(false);
  }
}

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('input').value.trim();
  if (!text || controller) return;
  $('input').value = '';
  send(text);
});
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('form').requestSubmit(); }
});
$('stop').addEventListener('click', () => { if (controller) controller.abort(); });
$('clear').addEventListener('click', () => { history.length = 0; $('log').textContent = ''; });
loadModel();
refreshCluster();
