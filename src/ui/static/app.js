// bitswarm's live page: one column per peer, redrawn from the snapshots the server sends over
// server-sent events (src/ui/server.ts). Read-only.
//
// Everything a snapshot carries may come from the network (manifest and file names, peer ids,
// addresses): it reaches the page through textContent and attribute values only, never as markup
// (the server's Content-Security-Policy and Trusted Types forbid innerHTML and inline scripts).
'use strict'

;(function () {
  const SVG = 'http://www.w3.org/2000/svg'
  /** the rate chart's window */
  const WINDOW_MS = 5 * 60 * 1000
  /** the piece map's greatest height, in CSS pixels */
  const MAP_HEIGHT = 120
  const SOURCES = ['tracker', 'dht', 'pex', 'bootstrap', 'cache', 'incoming']
  const VIAS = ['direct', 'relayed', 'hole-punched']
  /** the peers table: heading, class (narrow columns hide the c-wide ones), tooltip */
  const PEER_COLUMNS = [
    ['peer', '', ''],
    ['address', 'c-wide', ''],
    ['from', 'c-wide', 'how we learned of it'],
    ['via', 'c-wide', 'how we reach it'],
    ['has', 'n', 'its share of the pieces'],
    ['↓ /s', 'n', 'bytes per second from it'],
    ['↑ /s', 'n', 'bytes per second to it'],
    ['flags', '', 'D downloading from it, d we want but it chokes us, U uploading to it, u it wants but we choke it, K it unchokes us but we want nothing, ? we unchoke it but it wants nothing, O optimistic unchoke, S snubbed']
  ]

  const columnsEl = document.getElementById('columns')
  const statusEl = document.getElementById('status')
  const titleEl = document.getElementById('title')

  /** name -> { el, parts, history: [[t, down, up]] } */
  const columns = new Map()

  // ---- small helpers -------------------------------------------------------------------------

  function el (tag, className, text) {
    const e = document.createElement(tag)
    if (className) e.className = className
    if (text != null) e.textContent = String(text)
    return e
  }

  function svg (tag, attrs) {
    const e = document.createElementNS(SVG, tag)
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]))
    return e
  }

  function num (x) {
    const n = Number(x)
    return Number.isFinite(n) ? n : 0
  }

  function str (x) {
    return typeof x === 'string' ? x : x == null ? '' : String(x)
  }

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  function bytes (n) {
    n = num(n)
    let u = 0
    while (n >= 1024 && u < UNITS.length - 1) { n /= 1024; u++ }
    return (u === 0 ? String(Math.round(n)) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + UNITS[u]
  }

  function rate (n) {
    return bytes(n) + '/s'
  }

  /** at most 4 digits: `908 KiB`, `0.98 MiB`, `12.3 MiB` (the peers table's narrow cells) */
  function shortBytes (n) {
    n = num(n)
    let u = 0
    while (n >= 1000 && u < UNITS.length - 1) { n /= 1024; u++ }
    return (u === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + UNITS[u]
  }

  function duration (s) {
    if (s == null || !Number.isFinite(s)) return '–'
    s = Math.round(s)
    if (s < 60) return s + 's'
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's'
    return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm'
  }

  function shortId (id) {
    id = str(id)
    return id.length > 16 ? '…' + id.slice(-8) : id
  }

  function pct (x) {
    return (Math.max(0, Math.min(1, num(x))) * 100).toFixed(1) + '%'
  }

  /** base64 -> bytes ([] for anything that is not base64) */
  function decode (b64) {
    try {
      const s = atob(str(b64))
      const out = new Uint8Array(s.length)
      for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
      return out
    } catch {
      return new Uint8Array(0)
    }
  }

  function bit (bits, i) {
    return (bits[i >> 3] & (0x80 >> (i & 7))) !== 0
  }

  function setText (e, text) {
    text = String(text)
    if (e.textContent !== text) e.textContent = text
  }

  // ---- a column ------------------------------------------------------------------------------

  function makeColumn (name) {
    const col = el('section', 'peer')
    col.dataset.name = name
    const head = el('header', 'peer-head')
    const h2 = el('h2', null, name)
    const phase = el('span', 'phase', '')
    const id = el('span', 'peer-id', '')
    head.append(h2, phase, id)

    const manifest = el('div', 'manifest')
    const mName = el('span', 'manifest-name', '')
    const mInfo = el('span', 'manifest-info', '')
    const files = el('details', 'files')
    const filesSummary = el('summary', null, '')
    const filesList = el('ul')
    files.append(filesSummary, filesList)
    files.hidden = true
    manifest.append(mName, mInfo, files)

    const progressRow = el('div', 'progress-row')
    const progress = el('progress')
    progress.max = 1
    progress.value = 0
    const progressText = el('span', 'progress-text', '')
    progressRow.append(progress, progressText)

    const figures = el('dl', 'figures')
    const fig = {}
    for (const [key, label, tip] of [
      ['down', '↓ rate', 'download rate over the last 5 s'], ['up', '↑ rate', 'upload rate over the last 5 s'],
      ['downloaded', 'downloaded', ''], ['uploaded', 'uploaded', ''],
      ['peers', 'peers', 'connected peers'], ['unchoke', 'unchoking / by', 'peers we upload to / peers that let us download'],
      ['ratio', 'ratio', 'uploaded / downloaded (a seeder: / the file)'], ['copies', 'copies', 'distributed copies: how many whole copies the connected peers hold']
    ]) {
      const box = el('div', 'figure')
      const dt = el('dt', null, label)
      if (tip) dt.title = tip
      box.append(dt)
      fig[key] = el('dd', null, '–')
      box.append(fig[key])
      figures.append(box)
    }
    const trouble = el('p', 'trouble', '')
    trouble.hidden = true

    // the piece map
    const mapBox = el('div', 'box map-box')
    mapBox.append(el('h3', null, 'pieces'))
    const canvas = el('canvas', 'piece-map')
    canvas.hidden = true
    const mapCaption = el('p', 'map-caption', 'no piece map yet')
    const legend = el('p', 'legend')
    for (const [cls, label] of [['have', 'have'], ['flight', 'in flight'], ['missing', 'missing'], ['none', 'no peer has it']]) {
      const item = el('span', 'legend-item')
      item.append(el('i', 'swatch ' + cls), document.createTextNode(label))
      legend.append(item)
    }
    legend.append(el('span', 'legend-item', 'darker: more peers have it'))
    mapBox.append(canvas, mapCaption, legend)

    // the rate chart
    // (stretched to the box: the labels are HTML over it, not SVG text that would stretch too)
    const chartBox = el('div', 'box chart-box')
    chartBox.append(el('h3', null, 'rates'))
    const chartWrap = el('div', 'chart-wrap')
    const chart = svg('svg', { class: 'chart', viewBox: '0 0 600 100', preserveAspectRatio: 'none', role: 'img' })
    const grid = svg('g', { class: 'grid' })
    const downLine = svg('polyline', { class: 'down', points: '' })
    const upLine = svg('polyline', { class: 'up', points: '' })
    for (const y of [10, 32.5, 55, 77.5]) grid.append(svg('line', { x1: 0, x2: 600, y1: y, y2: y }))
    chart.append(grid, downLine, upLine)
    const maxLabel = el('span', 'axis axis-top', '')
    chartWrap.append(chart, maxLabel)
    const chartLegend = el('p', 'legend chart-legend')
    const downKey = el('span', 'legend-item')
    downKey.append(el('i', 'swatch down'), document.createTextNode('download'))
    const upKey = el('span', 'legend-item')
    upKey.append(el('i', 'swatch up'), document.createTextNode('upload'))
    const spanLabel = el('span', 'axis-span', '')
    chartLegend.append(downKey, upKey, spanLabel)
    chartBox.append(chartWrap, chartLegend)

    // where peers came from
    const sourcesBox = el('div', 'box sources-box')
    sourcesBox.append(el('h3', null, 'where peers came from'))
    const sourcesTable = el('table', 'sources')
    const sHead = el('thead')
    const sHeadRow = el('tr')
    for (const h of ['source', 'peers', '', 'downloaded']) sHeadRow.append(el('th', null, h))
    sHead.append(sHeadRow)
    const sBody = el('tbody')
    const sourceRows = {}
    for (const s of SOURCES) {
      const tr = el('tr')
      tr.dataset.source = s
      const count = el('td', 'n', '0')
      const barCell = el('td', 'bar-cell')
      const bar = el('meter')
      bar.min = 0
      bar.max = 1
      bar.value = 0
      barCell.append(bar)
      const from = el('td', 'n', '0 B')
      tr.append(el('td', null, s), count, barCell, from)
      sBody.append(tr)
      sourceRows[s] = { tr, count, bar, from }
    }
    sourcesTable.append(sHead, sBody)
    const sourcesNote = el('p', 'note', '')
    const reached = el('p', 'reached', '')
    sourcesBox.append(sourcesTable, sourcesNote, reached)

    // the peers table
    const peersBox = el('div', 'box peers-box')
    const peersTitle = el('h3', null, 'peers')
    const peersTable = el('table', 'peers')
    const pHead = el('thead')
    const pHeadRow = el('tr')
    for (const [h, cls, tip] of PEER_COLUMNS) {
      const th = el('th', cls, h)
      if (tip) th.title = tip
      pHeadRow.append(th)
    }
    pHead.append(pHeadRow)
    const pBody = el('tbody')
    peersTable.append(pHead, pBody)
    const peersNote = el('p', 'note', '')
    const flagsKey = el('p', 'legend flags-key', 'flags: D downloading from it · d it chokes us · U uploading to it · u we choke it · O optimistic · S snubbed')
    peersBox.append(peersTitle, peersTable, peersNote, flagsKey)

    // laid out by the stylesheet: stacked in a narrow column, the peers on the right in a wide one
    const body = el('div', 'peer-body')
    body.append(mapBox, peersBox, chartBox, sourcesBox)

    col.append(head, manifest, progressRow, figures, trouble, body)
    return {
      el: col,
      history: [],
      parts: { phase, id, mName, mInfo, files, filesSummary, filesList, progress, progressText, fig, trouble, canvas, mapCaption, chart, downLine, upLine, maxLabel, spanLabel, sourceRows, sourcesNote, reached, peersTitle, pBody, peersNote }
    }
  }

  // ---- drawing -------------------------------------------------------------------------------

  function render (msg) {
    if (typeof msg.title === 'string') {
      setText(titleEl, msg.title)
      document.title = msg.title
    }
    const snaps = Array.isArray(msg.sources) ? msg.sources : []
    const seen = new Set()
    snaps.forEach(function (snap, i) {
      if (snap == null || typeof snap !== 'object') return
      const name = str(snap.name) || 'peer ' + (i + 1)
      seen.add(name)
      let c = columns.get(name)
      if (c == null) {
        c = makeColumn(name)
        columns.set(name, c)
      }
      // keep the server's order
      if (columnsEl.children[i] !== c.el) columnsEl.insertBefore(c.el, columnsEl.children[i] || null)
      if (Array.isArray(msg.history) && Array.isArray(msg.history[i])) {
        c.history = msg.history[i].filter(Array.isArray).map(function (s) { return [num(s[0]), num(s[1]), num(s[2])] })
      } else if (snap.stats != null) {
        c.history.push([num(snap.t), num(snap.stats.downloadRate), num(snap.stats.uploadRate)])
      }
      const cut = num(snap.t) - WINDOW_MS
      while (c.history.length > 0 && c.history[0][0] < cut) c.history.shift()
      c.last = snap
      drawColumn(c, snap)
    })
    for (const [name, c] of columns) {
      if (!seen.has(name)) { c.el.remove(); columns.delete(name) }
    }
    columnsEl.dataset.count = String(columns.size)
  }

  function drawColumn (c, snap) {
    const p = c.parts
    const s = snap.stats
    const phase = str(snap.phase)
    setText(p.phase, phase === 'manifest' ? 'looking for the manifest' : phase)
    p.phase.dataset.phase = phase
    setText(p.id, snap.peerId ? 'peer ' + shortId(snap.peerId) : '')
    p.id.title = str(snap.peerId)

    const m = snap.manifest
    if (m != null && typeof m === 'object') {
      setText(p.mName, str(m.name))
      setText(p.mInfo, bytes(m.bytes) + ' · pieces of ' + bytes(m.pieceLength) + (m.files != null ? ' · ' + num(m.files) + ' files' : ''))
      const names = Array.isArray(m.fileNames) ? m.fileNames.map(str) : []
      p.files.hidden = names.length === 0
      const summary = names.length < num(m.files) ? 'files (first ' + names.length + ' of ' + num(m.files) + ')' : 'files'
      setText(p.filesSummary, summary)
      if (p.filesList.dataset.key !== names.join('\n')) {
        p.filesList.replaceChildren(...names.map(function (n) { return el('li', null, n) }))
        p.filesList.dataset.key = names.join('\n')
      }
    } else {
      setText(p.mName, snap.cid ? str(snap.cid) : '')
      setText(p.mInfo, phase === 'starting' ? 'starting…' : 'manifest not known yet')
    }

    if (s == null || typeof s !== 'object') return
    const pieces = num(s.pieces)
    const progress = phase === 'manifest' ? 0 : pieces === 0 ? 1 : num(s.have) / pieces
    p.progress.value = progress
    const eta = phase === 'manifest' ? '' : phase === 'seeding' || num(s.left) === 0 ? ' · done' : num(s.downloadRate) > 0 ? ' · ETA ' + duration(num(s.left) / num(s.downloadRate)) : ''
    setText(p.progressText, pct(progress) + (pieces > 0 ? ' · ' + num(s.have) + '/' + pieces + ' pieces' : '') + eta)
    const f = p.fig
    setText(f.down, rate(s.downloadRate))
    setText(f.up, rate(s.uploadRate))
    setText(f.downloaded, bytes(s.downloaded))
    setText(f.uploaded, bytes(s.uploaded))
    setText(f.peers, num(s.peers))
    setText(f.unchoke, num(s.unchoking) + ' / ' + num(s.unchokedBy))
    const base = phase === 'seeding' && num(s.downloaded) === 0 ? (m != null ? num(m.bytes) : 0) : num(s.downloaded)
    const ratio = typeof s.ratio === 'number' && Number.isFinite(s.ratio) ? s.ratio : base > 0 ? num(s.uploaded) / base : null
    setText(f.ratio, ratio == null ? '–' : ratio.toFixed(2))
    setText(f.copies, typeof s.distributedCopies === 'number' && Number.isFinite(s.distributedCopies) ? s.distributedCopies.toFixed(2) : '–')
    const bad = []
    if (num(s.wasted) > 0) bad.push(bytes(s.wasted) + ' wasted')
    if (num(s.hashFailures) > 0) bad.push(num(s.hashFailures) + ' pieces failed their hash check')
    if (num(s.banned) > 0) bad.push(num(s.banned) + ' peers banned')
    p.trouble.hidden = bad.length === 0
    setText(p.trouble, bad.join(' · '))

    drawMap(p, snap.map)
    drawChart(p, c.history)
    drawSources(p, s)
    drawPeers(p, snap.peers)
  }

  function drawMap (p, map) {
    const canvas = p.canvas
    if (map == null || typeof map !== 'object' || num(map.cells) === 0) {
      canvas.hidden = true
      setText(p.mapCaption, 'no piece map yet')
      return
    }
    canvas.hidden = false
    const cells = Math.min(num(map.cells), 1 << 16)
    const bin = Math.max(1, num(map.bin))
    const have = decode(map.have)
    const some = decode(map.some)
    const flight = decode(map.inFlight)
    const avail = map.availability != null ? decode(map.availability) : null
    let maxAvail = 1
    if (avail != null) for (let i = 0; i < cells; i++) maxAvail = Math.max(maxAvail, avail[i] || 0)

    // a grid that fills the width and stays under MAP_HEIGHT px high
    const width = Math.max(120, Math.floor(canvas.parentElement.clientWidth - 2))
    let size = Math.max(2, Math.min(18, Math.floor(Math.sqrt(width * MAP_HEIGHT / cells))))
    let perRow = Math.max(1, Math.floor(width / size))
    while (size > 2 && Math.ceil(cells / perRow) * size > MAP_HEIGHT) { size--; perRow = Math.max(1, Math.floor(width / size)) }
    const rows = Math.ceil(cells / perRow)
    const dpr = window.devicePixelRatio || 1
    const cssW = perRow * size
    const cssH = rows * size
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr)
      canvas.height = Math.round(cssH * dpr)
      canvas.style.width = cssW + 'px'
      canvas.style.height = cssH + 'px'
    }
    const ctx = canvas.getContext('2d')
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0)
    ctx.clearRect(0, 0, cssW, cssH)
    const gap = size >= 6 ? 1 : 0
    let nHave = 0
    let nFlight = 0
    let nNone = 0
    for (let i = 0; i < cells; i++) {
      const a = avail != null ? avail[i] || 0 : -1
      const shade = a < 0 ? 0.5 : Math.min(1, a / maxAvail)
      let color
      if (bit(have, i)) {
        nHave++
        color = mix([168, 220, 185], [30, 123, 69], a < 0 ? 0.6 : 0.25 + 0.75 * shade)
      } else if (bit(flight, i)) {
        nFlight++
        color = [240, 160, 32]
      } else if (bit(some, i)) {
        color = [120, 190, 140]
      } else if (a === 0) {
        nNone++
        color = [242, 205, 200]
      } else {
        color = a < 0 ? [210, 214, 220] : mix([214, 226, 242], [38, 84, 150], shade)
      }
      ctx.fillStyle = 'rgb(' + color.join(',') + ')'
      ctx.fillRect((i % perRow) * size, Math.floor(i / perRow) * size, size - gap, size - gap)
    }
    const missing = cells - nHave - nFlight
    const unit = bin === 1 ? 'pieces' : 'cells of ' + bin + ' pieces'
    setText(p.mapCaption, num(map.pieces) + ' pieces' + (bin > 1 ? ' (' + cells + ' ' + unit + ')' : '') + ': ' +
      nHave + ' have · ' + nFlight + ' in flight · ' + missing + ' missing' + (avail != null && nNone > 0 ? ' (' + nNone + ' that no peer has)' : ''))
    canvas.dataset.have = String(nHave)
    canvas.dataset.inFlight = String(nFlight)
    canvas.dataset.cells = String(cells)
  }

  function mix (from, to, t) {
    return [0, 1, 2].map(function (k) { return Math.round(from[k] + (to[k] - from[k]) * t) })
  }

  function drawChart (p, history) {
    if (history.length === 0) return
    const now = history[history.length - 1][0]
    // the window grows with the run: a minute at first, five at most
    const span = Math.min(WINDOW_MS, Math.max(60000, now - history[0][0]))
    let max = 1
    for (const h of history) max = Math.max(max, h[1], h[2])
    const top = niceTop(max)
    const x = function (t) { return (600 * (1 - (now - t) / span)).toFixed(1) }
    const y = function (v) { return (99 - 89 * v / top).toFixed(1) }
    p.downLine.setAttribute('points', history.map(function (h) { return x(h[0]) + ',' + y(h[1]) }).join(' '))
    p.upLine.setAttribute('points', history.map(function (h) { return x(h[0]) + ',' + y(h[2]) }).join(' '))
    setText(p.maxLabel, rate(top))
    setText(p.spanLabel, 'last ' + Math.round(span / 60000) + ' min')
  }

  function niceTop (v) {
    const exp = Math.pow(10, Math.floor(Math.log10(v)))
    for (const m of [1, 2, 5, 10]) if (m * exp >= v) return m * exp
    return 10 * exp
  }

  function drawSources (p, s) {
    const sources = s.sources && typeof s.sources === 'object' ? s.sources : {}
    const from = s.downloadedFrom && typeof s.downloadedFrom === 'object' ? s.downloadedFrom : {}
    const total = Math.max(1, num(s.peers))
    let shown = 0
    for (const k of SOURCES) {
      const row = p.sourceRows[k]
      const n = num(sources[k])
      setText(row.count, n)
      row.bar.value = n / total
      setText(row.from, bytes(from[k]))
      // only the sources that gave something
      row.tr.hidden = n === 0 && num(from[k]) === 0
      if (!row.tr.hidden) shown++
    }
    setText(p.sourcesNote, shown === 0 ? 'no peer yet' : '')
    const r = s.reached && typeof s.reached === 'object' ? s.reached : {}
    setText(p.reached, 'reached: ' + VIAS.map(function (v) { return v + ' ' + num(r[v]) }).join(' · '))
  }

  function flags (peer) {
    let f = ''
    if (peer.amInterested && !peer.peerChoking) f += 'D'
    else if (peer.amInterested) f += 'd'
    else if (peer.peerChoking === false) f += 'K'
    if (peer.peerInterested && !peer.amChoking) f += 'U'
    else if (peer.peerInterested) f += 'u'
    else if (peer.amChoking === false) f += '?'
    if (peer.optimistic) f += 'O'
    if (peer.snubbed) f += 'S'
    return f
  }

  function drawPeers (p, peers) {
    if (!Array.isArray(peers)) {
      setText(p.peersTitle, 'peers')
      setText(p.peersNote, 'this peer does not list its peers')
      p.pBody.replaceChildren()
      return
    }
    setText(p.peersTitle, 'peers (' + peers.length + ')')
    setText(p.peersNote, peers.length === 0 ? 'no peer connected' : '')
    const sorted = peers.filter(function (x) { return x != null && typeof x === 'object' })
      .sort(function (a, b) { return num(b.downloadRate) + num(b.uploadRate) - num(a.downloadRate) - num(a.uploadRate) || str(a.peerId).localeCompare(str(b.peerId)) })
    const rows = sorted.map(function (peer) {
      const tr = el('tr')
      tr.dataset.peerId = str(peer.peerId)
      const id = el('td', 'mono', shortId(peer.peerId))
      id.title = str(peer.peerId)
      const addr = el('td', 'mono addr c-wide', str(peer.address))
      addr.title = str(peer.address)
      // whole percents (99% until it is all there): the narrow columns have no room for more
      const has = el('td', 'n', peer.progress == null ? '' : Math.floor(Math.max(0, Math.min(1, num(peer.progress))) * 100) + '%')
      const f = el('td', 'mono flags', flags(peer))
      tr.append(id, addr, el('td', 'c-wide', str(peer.source)), el('td', 'c-wide', str(peer.via)), has,
        el('td', 'n', peer.downloadRate == null ? '' : shortBytes(peer.downloadRate)), el('td', 'n', peer.uploadRate == null ? '' : shortBytes(peer.uploadRate)), f)
      return tr
    })
    p.pBody.replaceChildren(...rows)
  }

  // ---- the feed ------------------------------------------------------------------------------

  function status (state, text) {
    statusEl.dataset.state = state
    setText(statusEl, text)
  }

  let lastMessage = 0
  const feed = new EventSource('events')
  feed.addEventListener('snapshot', function (evt) {
    let msg
    try { msg = JSON.parse(evt.data) } catch { return }
    if (msg == null || typeof msg !== 'object') return
    lastMessage = Date.now()
    status('live', 'live')
    render(msg)
  })
  feed.addEventListener('error', function () {
    status('down', feed.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting… (has the peer stopped?)')
  })
  setInterval(function () {
    if (lastMessage > 0 && Date.now() - lastMessage > 5000 && statusEl.dataset.state === 'live') status('stale', 'no update for ' + Math.round((Date.now() - lastMessage) / 1000) + ' s')
  }, 1000)
  // redraw the maps at the new width
  window.addEventListener('resize', function () {
    for (const c of columns.values()) if (c.last != null) drawMap(c.parts, c.last.map)
  })
})()
