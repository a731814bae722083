// The web page: upload or pick an image, POST it to /classify, show the predictions and draw the
// attention heatmap from GET /attention/:id. Plain script, no build step.

const $ = (id) => document.getElementById(id);
const EXAMPLES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
let apiKey = sessionStorage.getItem('vitrine-key') || '';
let current = null; // { id, model, layers, methods, classMethods (those that explain one class), labels, cls: the class they explain }
let lastImage = null; // the image shown, so that another model can classify it again
let served = {}; // name -> what GET /models says of it
// Answers can come back out of order (a model switched while the last image's map is still drawing):
// each classification and each draw takes a number, and only the latest one writes to the page.
let classifying = 0;
let drawing = 0;

function headers() {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

async function api(url, options = {}) {
  const res = await fetch(url, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (res.status === 401) {
    const key = prompt('This server needs an API key:');
    if (key) {
      apiKey = key;
      sessionStorage.setItem('vitrine-key', key);
      return api(url, options);
    }
  }
  return res;
}

/** An element with properties and children (nodes or text): what the server sends (model names,
 *  labels) only ever becomes text, never markup. */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
  if (isError) $('status').scrollIntoView({ block: 'nearest' });
}

/** A failed request leaves nothing of the previous image on screen beside the error. */
function clearOutput() {
  current = null;
  $('output').hidden = true;
  $('predictions').replaceChildren();
  $('timings').textContent = '';
  $('heatmap').removeAttribute('src');
  $('original').removeAttribute('src');
}

async function errorText(res) {
  try {
    const body = await res.json();
    return `${body.error}: ${body.message}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

// The models served, read again every 10 s while the page is shown and when it is shown again: models
// loaded, reloaded and unloaded while serving appear and go without a reload of the page. The list is
// rebuilt only when it changed, and keeps the model chosen while it is served.
let listed = '';
async function loadModels() {
  const res = await api('/models');
  if (!res.ok) return;
  const { default: def, models } = await res.json();
  served = Object.fromEntries(models.map((m) => [m.name, m]));
  const text = models.map((m) => `${m.name} (${m.provider})`).join('\n');
  if (text === listed) return;
  listed = text;
  const chosen = served[$('model').value] ? $('model').value : def;
  $('model').replaceChildren(
    ...models.map((m) => el('option', { value: m.name, selected: m.name === chosen }, `${m.name} (${m.provider})`)),
  );
}
const refreshModels = () => document.visibilityState === 'visible' && loadModels().catch(() => {});

async function classify(blob) {
  lastImage = blob;
  const mine = ++classifying;
  drawing++; // a map still drawing for the previous image is not shown over this one
  status('Classifying…');
  const form = new FormData();
  form.append('image', blob, 'image');
  const model = $('model').value;
  // the map shown first is the top class's relevance: asked with the classification, it is made in
  // the same run and kept with the result, so drawing it runs the model no more
  // the default map comes with the classification (one run of the light graph); the others are drawn after
  const inline = served[model]?.methods.includes('relevance') && $('method').value === 'relevance' ? '&attention=relevance' : '';
  let res;
  try {
    res = await api(
      `/classify?topk=5${model ? `&model=${encodeURIComponent(model)}` : ''}${$('tta').checked ? '&tta=flip' : ''}${inline}`,
      { method: 'POST', body: form },
    );
  } catch (err) {
    if (mine !== classifying) return;
    clearOutput();
    status(`the server did not answer: ${err.message}`, true);
    return;
  }
  if (!res.ok) {
    const text = await errorText(res);
    if (mine !== classifying) return;
    clearOutput();
    status(text, true);
    return;
  }
  const body = await res.json();
  if (mine !== classifying) return;
  current = {
    id: body.id,
    model: body.model,
    layers: 0,
    methods: [],
    classMethods: [],
    labels: [],
    cls: body.predictions[0] ? body.predictions[0].index : 0,
  };
  // shown as the model sees it: the centre square of the image, or the whole image stretched to the
  // model's shape (Hugging Face processors resize so)
  const stretched = served[body.model] && served[body.model].input.fit === 'fill';
  $('original').style.objectFit = stretched ? 'fill' : 'cover';
  $('original-caption').textContent = stretched
    ? "Image: stretched to the model's input, as the model sees it"
    : 'Image: the centre square the model sees';
  $('original').src = URL.createObjectURL(blob);
  $('output').hidden = false;
  // each prediction is a button: "why this class?" shows its relevance map
  $('predictions').replaceChildren(
    ...body.predictions.map((p, i) => {
      const bar = el('span', { className: 'bar' });
      bar.style.width = `${Math.max(1, Math.round(p.probability * 200))}px`;
      const why = el(
        'button',
        { type: 'button', className: `why${i === 0 ? ' chosen' : ''}`, title: `why ${p.label}?` },
        el('span', { className: 'label' }, p.label),
        bar,
        `${(100 * p.probability).toFixed(1)}%`,
      );
      why.dataset.index = String(p.index);
      return el('li', {}, why);
    }),
  );
  const t = body.timings;
  $('timings').textContent =
    `decode ${t.decode_ms.toFixed(1)} ms · queue ${t.queue_ms.toFixed(1)} ms · ` +
    `inference ${t.inference_ms.toFixed(1)} ms (batch of ${t.batch_size}) · total ${t.total_ms.toFixed(1)} ms`;
  $('heatmap-figure').hidden = !body.attention;
  $('controls').hidden = !body.attention;
  if (body.attention) {
    const info = served[body.model];
    current.layers = info ? info.outputs.attentions.length : 0;
    current.methods = info ? info.methods : [];
    current.classMethods = info ? info.class_methods : [];
    current.labels = info ? info.labels : [];
    // relevance is the default where the model has it; the methods GET /models does not list for it are hidden
    for (const option of $('method').options) option.hidden = option.disabled = !current.methods.includes(option.value);
    if (!current.methods.includes($('method').value)) $('method').value = 'rollout';
    $('layer').replaceChildren(
      ...Array.from({ length: current.layers }, (_, i) =>
        el('option', { value: String(i), selected: i === current.layers - 1 }, String(i + 1)),
      ),
    );
    if (await drawHeatmap()) status(''); // false where a newer classification took its place
  } else {
    $('heatmap').removeAttribute('src');
    status('This model has no attention outputs, so no maps (vitrine import gives a ViT exported to ONNX its maps).');
  }
}

const CAPTIONS = {
  relevance: 'relevance',
  chefer: 'attention relevance',
  'grad-input': 'gradient × input',
  combined: 'combined relevance',
};

/** Draws the map the controls ask for; false where a newer draw or classification took its place.
 *  Each draw, drawn or dropped, counts in the page's data-draws-settled (what a test waits on). */
async function drawHeatmap() {
  try {
    return await drawHeatmapNow();
  } finally {
    document.documentElement.dataset.drawsSettled = String(Number(document.documentElement.dataset.drawsSettled ?? 0) + 1);
  }
}

async function drawHeatmapNow() {
  if (!current) return false;
  const mine = ++drawing;
  const method = $('method').value;
  const forClass = current.classMethods.includes(method);
  $('layer-row').hidden = method !== 'cls';
  $('head-row').hidden = forClass;
  const q = new URLSearchParams({ method, alpha: $('alpha').value, colormap: $('colormap').value, size: '256' });
  if (method === 'cls') q.set('layer', $('layer').value);
  if (!forClass) q.set('head', $('head').value);
  else q.set('class', String(current.cls));
  for (const b of document.querySelectorAll('#predictions .why'))
    b.classList.toggle('chosen', forClass && Number(b.dataset.index) === current.cls);
  const res = await api(`/attention/${current.id}?${q}`);
  if (!res.ok) {
    const text = await errorText(res);
    if (mine !== drawing) return false;
    status(text, true);
    return false;
  }
  const png = await res.blob();
  if (mine !== drawing) return false;
  $('heatmap').src = URL.createObjectURL(png);
  $('heatmap-caption').textContent =
    method === 'rollout'
      ? 'Attention rollout'
      : method === 'cls'
        ? `[CLS] attention, layer ${Number($('layer').value) + 1}`
        : `Why "${current.labels[current.cls] ?? current.cls}": ${CAPTIONS[method]}`;
  return true;
}

function setup() {
  const drop = $('drop');
  $('file').addEventListener('change', (e) => e.target.files[0] && classify(e.target.files[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  // the drop zone takes the keyboard focus: Enter or Space opens the file picker
  drop.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' && e.key !== ' ') return;
    e.preventDefault();
    $('file').click();
  });
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]);
  });
  $('examples').replaceChildren(
    ...EXAMPLES.map((n) => {
      const b = el('button', { type: 'button', title: n }, el('img', { src: `examples/${n}.png`, alt: n }));
      b.dataset.name = n;
      return b;
    }),
  );
  $('examples').addEventListener('click', async (e) => {
    const button = e.target.closest('button');
    if (button) classify(await (await fetch(`examples/${button.dataset.name}.png`)).blob());
  });
  for (const id of ['method', 'layer', 'head', 'alpha', 'colormap']) $(id).addEventListener('change', drawHeatmap);
  $('model').addEventListener('change', () => lastImage && classify(lastImage));
  $('tta').addEventListener('change', () => lastImage && classify(lastImage));
  $('predictions').addEventListener('click', (e) => {
    const button = e.target.closest('button.why');
    if (!button || !current || !current.methods.includes('relevance')) return;
    current.cls = Number(button.dataset.index);
    if (!current.classMethods.includes($('method').value)) $('method').value = 'relevance';
    drawHeatmap();
  });
  loadModels().catch((err) => status(String(err), true));
  setInterval(refreshModels, 10_000);
  document.addEventListener('visibilitychange', refreshModels);
}

setup();
