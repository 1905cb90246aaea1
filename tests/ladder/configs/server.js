const http = require("http");
const server = http.createServer(app);
// server.keepAliveTimeout = 5000;
server.keepAliveTimeout = 61000;
server.headersTimeout = 62000;
