/* Picking a point on a map for a request form (Leaflet, served by the console itself).
 * Each element with data-map names two inputs (data-lat, data-lng); clicking the map or
 * dragging the marker fills them, typing into them moves the marker. With no tile server
 * configured (data-tiles empty) the map is blank but the point is still shown. Without
 * JavaScript the element stays hidden and the inputs are typed as they are. */
(function () {
  "use strict";
  function byName(name) { return document.getElementsByName(name)[0]; }
  function start() {
    if (typeof L === "undefined") { return; }
    document.querySelectorAll("[data-map]").forEach(function (box) {
      var lat = byName(box.dataset.lat), lng = byName(box.dataset.lng);
      if (!lat || !lng) { return; }
      box.hidden = false;
      var map = L.map(box, {attributionControl: !!box.dataset.tiles});
      if (box.dataset.tiles) {
        L.tileLayer(box.dataset.tiles, {maxZoom: 19}).addTo(map);
      }
      var marker = null;
      function typed() {
        var a = parseFloat(lat.value), b = parseFloat(lng.value);
        return isFinite(a) && isFinite(b) ? [a, b] : null;
      }
      function place(point, fromMap) {
        if (!marker) {
          marker = L.marker(point, {draggable: true}).addTo(map);
          marker.on("dragend", function () { place(marker.getLatLng(), true); });
        } else { marker.setLatLng(point); }
        if (fromMap) {
          lat.value = Number(point.lat).toFixed(6);
          lng.value = Number(point.lng).toFixed(6);
        }
      }
      var first = typed();
      if (first) { map.setView(first, 15); place(first, false); }
      else { map.setView([-2.5, 118], 4); }
      map.on("click", function (event) { place(event.latlng, true); });
      [lat, lng].forEach(function (input) {
        input.addEventListener("change", function () {
          var point = typed();
          if (point) { place(point, false); map.panTo(point); }
        });
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
