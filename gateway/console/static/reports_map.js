/* The reports page's map of deliveries (Leaflet, served by the console itself). The points
 * are read from the table beside the map (rows with data-lat and data-lng), so the table
 * stays the truth: without JavaScript the map stays hidden and the table is all there is.
 * With no tile server configured (data-tiles empty), or tiles that do not load, the map is
 * blank but the points are still drawn as circles. */
(function () {
  "use strict";
  function start() {
    if (typeof L === "undefined") { return; }
    document.querySelectorAll("[data-points-map]").forEach(function (box) {
      var table = document.getElementById(box.dataset.table);
      if (!table) { return; }
      box.hidden = false;
      var map = L.map(box, {attributionControl: !!box.dataset.tiles});
      if (box.dataset.tiles) {
        L.tileLayer(box.dataset.tiles, {maxZoom: 19}).addTo(map);
      }
      var points = [];
      table.querySelectorAll("tr[data-lat]").forEach(function (row) {
        var lat = parseFloat(row.dataset.lat), lng = parseFloat(row.dataset.lng);
        if (isFinite(lat) && isFinite(lng)) { points.push([lat, lng]); }
      });
      points.forEach(function (point) {
        L.circleMarker(point, {radius: 5, weight: 1, fillOpacity: 0.6}).addTo(map);
      });
      box.dataset.points = String(points.length);
      if (points.length) { map.fitBounds(L.latLngBounds(points).pad(0.2), {maxZoom: 15}); }
      else { map.setView([-2.5, 118], 4); }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
