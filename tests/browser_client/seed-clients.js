// The browser WebSocketManager and SSEClient classes of the real-time patterns document
// that REP grew out of, verbatim: the client conformance run judges them as they are.
// The page (driver.js) adds only what they leave undefined.

// client/websocket-manager.js
class WebSocketManager {
  constructor(options = {}) {
    this.url = options.url || this.getWebSocketUrl();
    this.token = options.token;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = options.maxReconnectAttempts || 5;
    this.reconnectDelay = options.reconnectDelay || 1000;
    this.heartbeatInterval = options.heartbeatInterval || 30000;
    
    this.ws = null;
    this.connected = false;
    this.messageHandlers = new Map();
    this.eventHandlers = new Map();
    
    this.setupEventHandlers();
  }
  
  connect() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      return Promise.resolve();
    }
    
    return new Promise((resolve, reject) => {
      const wsUrl = this.token ? 
        `${this.url}?token=${this.token}` : 
        this.url;
        
      this.ws = new WebSocket(wsUrl);
      
      this.ws.onopen = () => {
        this.connected = true;
        this.reconnectAttempts = 0;
        this.startHeartbeat();
        this.emit('connected');
        resolve();
      };
      
      this.ws.onclose = (event) => {
        this.connected = false;
        this.stopHeartbeat();
        this.emit('disconnected', event);
        this.handleReconnection();
      };
      
      this.ws.onerror = (error) => {
        this.emit('error', error);
        reject(error);
      };
      
      this.ws.onmessage = (event) => {
        this.handleMessage(event.data);
      };
    });
  }
  
  disconnect() {
    if (this.ws) {
      this.ws.close();
      this.ws = null;
    }
    this.connected = false;
    this.stopHeartbeat();
  }
  
  send(type, payload, options = {}) {
    if (!this.connected) {
      throw new Error('WebSocket not connected');
    }
    
    const message = {
      id: this.generateId(),
      type,
      timestamp: new Date().toISOString(),
      payload,
      metadata: {
        version: '1.0',
        source: 'client',
        ...options.metadata
      }
    };
    
    this.ws.send(JSON.stringify(message));
    return message.id;
  }
  
  handleMessage(data) {
    try {
      const message = JSON.parse(data);
      
      // Check for specific message handlers
      const handler = this.messageHandlers.get(message.type);
      if (handler) {
        handler(message);
      }
      
      // Emit general message event
      this.emit('message', message);
      
    } catch (error) {
      console.error('Failed to parse WebSocket message:', error);
    }
  }
  
  onMessage(type, handler) {
    this.messageHandlers.set(type, handler);
  }
  
  on(event, handler) {
    if (!this.eventHandlers.has(event)) {
      this.eventHandlers.set(event, []);
    }
    this.eventHandlers.get(event).push(handler);
  }
  
  emit(event, data) {
    const handlers = this.eventHandlers.get(event) || [];
    handlers.forEach(handler => handler(data));
  }
  
  startHeartbeat() {
    this.heartbeatTimer = setInterval(() => {
      if (this.connected) {
        this.send('ping', { timestamp: Date.now() });
      }
    }, this.heartbeatInterval);
  }
  
  stopHeartbeat() {
    if (this.heartbeatTimer) {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = null;
    }
  }
  
  handleReconnection() {
    if (this.reconnectAttempts < this.maxReconnectAttempts) {
      const delay = this.reconnectDelay * Math.pow(2, this.reconnectAttempts);
      
      setTimeout(() => {
        this.reconnectAttempts++;
        this.emit('reconnecting', this.reconnectAttempts);
        this.connect().catch(() => {
          // Reconnection will be handled by onclose event
        });
      }, delay);
    } else {
      this.emit('reconnection_failed');
    }
  }
  
  getWebSocketUrl() {
    const protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${protocol}//${window.location.host}/ws`;
  }
  
  generateId() {
    return `${Date.now()}-${Math.random().toString(36).substr(2, 9)}`;
  }
}

// client/sse-client.js
class SSEClient {
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.eventSource = null;
    this.connected = false;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = options.maxReconnectAttempts || 5;
    this.reconnectDelay = options.reconnectDelay || 1000;
    
    this.eventHandlers = new Map();
  }
  
  connect() {
    if (this.eventSource && this.eventSource.readyState === EventSource.OPEN) {
      return Promise.resolve();
    }
    
    return new Promise((resolve, reject) => {
      this.eventSource = new EventSource(this.url);
      
      this.eventSource.onopen = () => {
        this.connected = true;
        this.reconnectAttempts = 0;
        this.emit('connected');
        resolve();
      };
      
      this.eventSource.onmessage = (event) => {
        this.handleMessage(event);
      };
      
      this.eventSource.onerror = (error) => {
        this.connected = false;
        this.emit('error', error);
        
        if (this.eventSource.readyState === EventSource.CLOSED) {
          this.handleReconnection();
        }
      };
      
      // Handle custom events
      this.setupCustomEventHandlers();
    });
  }
  
  disconnect() {
    if (this.eventSource) {
      this.eventSource.close();
      this.eventSource = null;
    }
    this.connected = false;
    this.emit('disconnected');
  }
  
  on(event, handler) {
    if (!this.eventHandlers.has(event)) {
      this.eventHandlers.set(event, []);
    }
    this.eventHandlers.get(event).push(handler);
    
    // Add SSE event listener for custom events
    if (this.eventSource && event !== 'connected' && event !== 'disconnected' && event !== 'error') {
      this.eventSource.addEventListener(event, (sseEvent) => {
        this.handleCustomEvent(event, sseEvent);
      });
    }
  }
  
  emit(event, data) {
    const handlers = this.eventHandlers.get(event) || [];
    handlers.forEach(handler => handler(data));
  }
  
  handleMessage(event) {
    try {
      const data = JSON.parse(event.data);
      this.emit('message', { 
        id: event.lastEventId, 
        data, 
        timestamp: Date.now() 
      });
    } catch (error) {
      console.error('Failed to parse SSE message:', error);
    }
  }
  
  handleCustomEvent(eventType, sseEvent) {
    try {
      const data = JSON.parse(sseEvent.data);
      this.emit(eventType, { 
        id: sseEvent.lastEventId, 
        data, 
        timestamp: Date.now() 
      });
    } catch (error) {
      console.error(`Failed to parse SSE ${eventType} event:`, error);
    }
  }
  
  setupCustomEventHandlers() {
    // This will be called when custom event handlers are added
    for (const [event] of this.eventHandlers) {
      if (event !== 'connected' && event !== 'disconnected' && event !== 'error' && event !== 'message') {
        this.eventSource.addEventListener(event, (sseEvent) => {
          this.handleCustomEvent(event, sseEvent);
        });
      }
    }
  }
  
  handleReconnection() {
    if (this.reconnectAttempts < this.maxReconnectAttempts) {
      const delay = this.reconnectDelay * Math.pow(2, this.reconnectAttempts);
      
      setTimeout(() => {
        this.reconnectAttempts++;
        this.emit('reconnecting', this.reconnectAttempts);
        this.connect().catch(() => {
          // Will retry through error handler
        });
      }, delay);
    } else {
      this.emit('reconnection_failed');
    }
  }
}
