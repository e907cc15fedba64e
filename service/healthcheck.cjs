// Container health check: exits 0 when the API answers /health on its port.
const http = require('http');
const req = http.get(
  { host: '127.0.0.1', port: Number(process.env.PORT || 8080), path: '/health', timeout: 3000 },
  (res) => {
    process.exit(res.statusCode === 200 ? 0 : 1);
  },
);
req.on('error', () => process.exit(1));
req.on('timeout', () => process.exit(1));
