// Starts Swagger UI (swagger-ui-bundle.js, loaded before this file) on the
// API description the page names in data-openapi-url: the page the service
// writes (wv_openapi_serve) holds no inline script, so a strict
// Content-Security-Policy (script-src 'self') serves it as it is.
window.addEventListener('load', () => {
  const root = document.getElementById('swagger-ui');
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    validatorUrl: null, // no badge fetched from another host
  });
});
