// Portuguese (pt-BR) and English. The language comes from the browser, can be switched, and
// the choice is remembered. `t(key, vars)` fills `{name}` placeholders.

/** Where the chosen language is remembered. */
const STORAGE_KEY = 'tertulia.lang';

/** Languages offered, in switch order. */
export const LANGUAGES = ['en', 'pt-BR'];

const en = {
  'app.tagline': 'Find people who share your interests and talk — by chat, voice or video.',
  'skip': 'Skip to content',
  'lang.switch': 'Português',
  'lang.switch.label': 'Mudar para português',
  'auth.login': 'Log in',
  'auth.register': 'Create account',
  'auth.nickname': 'Nickname',
  'auth.password': 'Password',
  'auth.password.hint': 'At least 8 characters, not your nickname.',
  'auth.nickname.hint': '3 to 32 letters, digits, dots, dashes or underscores; starts with a letter or digit.',
  'auth.themes': 'Themes you follow',
  'auth.themes.hint': 'Pick what you would like to talk about. You can change them any time.',
  'auth.themes.change': 'Change my themes as I log in',
  'auth.capabilities': 'How you can talk',
  'auth.capabilities.hint': 'Others only see the actions you can take part in.',
  'auth.submit.login': 'Log in',
  'auth.submit.register': 'Create account',
  'auth.working': 'One moment…',
  'auth.themes.none': 'No themes on this server yet.',
  'auth.themes.unavailable': 'Themes could not be loaded; you can choose them later.',
  'auth.followers': '{n} following',
  'cap.video': 'Video',
  'cap.audio': 'Voice',
  'cap.text': 'Text chat',
  'cap.video.long': 'Video calls (camera)',
  'cap.audio.long': 'Voice calls (microphone)',
  'cap.text.long': 'Text chat',
  'status.online': 'Online',
  'status.busy': 'Busy',
  'status.away': 'Away',
  'status.in_call': 'In a call',
  'status.offline': 'Offline',
  'status.mine': 'Your status',
  'conn.connecting': 'Connecting…',
  'conn.open': 'Connected',
  'conn.reconnecting': 'Connection lost. Reconnecting…',
  'conn.reconnecting.in': 'Connection lost. Reconnecting in {s} s…',
  'conn.retry': 'Retry now',
  'conn.closed': 'Disconnected',
  'conn.revoked': 'Your session ended. Please log in again.',
  'nav.profile': 'Profile',
  'nav.logout': 'Log out',
  'lobby.hello': 'Hi, {name}',
  'lobby.title': 'Lobby',
  'lobby.yours': 'Your themes',
  'lobby.others': 'More themes',
  'lobby.nothemes': 'No theme',
  'lobby.nothemes.desc': 'People who have not picked a theme yet.',
  'lobby.filters': 'Filters',
  'lobby.filter.search': 'Search people',
  'lobby.filter.theme': 'Theme',
  'lobby.filter.theme.all': 'All themes',
  'lobby.filter.cap': 'Can talk by',
  'lobby.filter.cap.any': 'Any way',
  'lobby.filter.avail': 'Show',
  'lobby.filter.avail.all': 'Everyone',
  'lobby.filter.avail.online': 'Online now',
  'lobby.filter.avail.available': 'Available to talk',
  'lobby.card.count': '{online} online · {total} people',
  'lobby.card.count.one': '{online} online · 1 person',
  'lobby.quiet': 'Quiet right now',
  'lobby.card.empty': 'Nobody here matches yet.',
  'lobby.shared': 'Shares {n} of your themes',
  'lobby.you': 'you',
  'lobby.empty': 'No theme matches these filters.',
  'action.video': 'Video call {name}',
  'action.audio': 'Voice call {name}',
  'action.chat': 'Chat with {name}',
  'action.unavailable': '{name} is {status}',
  'missed.title': 'Missed calls',
  'missed.item': '{name} called you ({media}) · {time}',
  'missed.callback': 'Call back',
  'missed.dismiss': 'Dismiss',
  'missed.clear': 'Clear all',
  'media.video': 'video',
  'media.audio': 'voice',
  'media.chat': 'chat',
  'incoming.title': 'Incoming call',
  'incoming.video': '{name} is calling you — video call',
  'incoming.audio': '{name} is calling you — voice call',
  'incoming.chat': '{name} wants to chat with you',
  'incoming.join': '{name} invites you into a call',
  'incoming.accept': 'Accept',
  'incoming.accept.chat': 'Open chat',
  'incoming.decline': 'Decline',
  'call.calling': 'Calling {name}…',
  'call.ringing': 'Ringing…',
  'call.cancel': 'Cancel',
  'call.declined': '{name} declined the call.',
  'call.busy': '{name} is busy right now.',
  'call.missed.caller': '{name} did not answer.',
  'call.missed.callee': 'You missed a call from {name}.',
  'call.cancelled': '{name} cancelled the call.',
  'call.ended': 'Call ended.',
  'call.ended.by': '{name} ended the call.',
  'call.ended.lost': '{name} lost the connection and did not come back: the call ended.',
  'call.left': '{name} left the call.',
  'call.left.lost': '{name}’s connection was lost: they left the call.',
  'call.lost': 'The call ended while you were disconnected.',
  'call.reconnecting': 'Connection lost — reconnecting… the call goes on.',
  'call.peer.away': '{names} lost the connection — waiting for them to come back…',
  'call.cancelled.offline': 'Connection lost: your call was cancelled.',
  'call.elsewhere': 'Answered on another device.',
  'call.failed': 'The call could not start: {reason}',
  'call.crossed': '{name} was calling you at the same moment — joining their call.',
  'call.title': 'Call',
  'call.with': 'Call with {names}',
  'call.you': 'You',
  'call.mute': 'Mute microphone',
  'call.unmute': 'Unmute microphone',
  'call.camera.off': 'Turn camera off',
  'call.camera.on': 'Turn camera on',
  'call.hangup': 'Hang up',
  'call.invite': 'Add someone',
  'call.invite.title': 'Invite someone into this call',
  'call.invite.none': 'Nobody else is available for this call right now.',
  'call.invite.ringing': 'Ringing {name}…',
  'call.invite.close': 'Close',
  'call.waiting': 'Waiting for the others to connect…',
  'call.nocamera': 'No camera available: you are in the call with your voice only.',
  'call.nomedia': 'No camera or microphone available: you can see and hear the others.',
  'call.timer': 'Call time',
  'call.chat': 'Open the chat',
  'peer.new': 'Connecting',
  'peer.connecting': 'Connecting',
  'peer.connected': 'Connected',
  'peer.disconnected': 'Reconnecting',
  'peer.failed': 'Connection failed, retrying',
  'peer.closed': 'Left',
  'peer.away': 'Connection lost, waiting…',
  'chat.title': 'Chat with {name}',
  'chat.close': 'Close chat with {name}',
  'chat.input': 'Message to {name}',
  'chat.send': 'Send',
  'chat.pending': 'Sending…',
  'chat.delivered': 'Delivered',
  'chat.failed': 'Not sent: {reason}',
  'chat.typing': '{name} is typing…',
  'chat.older': 'Load older messages',
  'chat.beginning': 'This is the beginning of your conversation.',
  'chat.offline': '{name} is offline: they will see your messages when they open this chat.',
  'chat.notified': '{name} was asked to open this chat.',
  'chat.unavailable': 'Chat is not available: {reason}',
  'chat.log': 'Messages',
  'profile.title': 'Your profile',
  'profile.save': 'Save',
  'profile.cancel': 'Cancel',
  'profile.saved': 'Profile saved.',
  'toast.close': 'Dismiss',
  'error.network': 'The server cannot be reached. Check your connection and try again.',
  'error.generic': 'Something went wrong: {reason}',
  'error.caps': 'Choose at least one way to talk.',
};

const pt = {
  'app.tagline': 'Encontre quem gosta do que você gosta e converse — por chat, voz ou vídeo.',
  'skip': 'Pular para o conteúdo',
  'lang.switch': 'English',
  'lang.switch.label': 'Switch to English',
  'auth.login': 'Entrar',
  'auth.register': 'Criar conta',
  'auth.nickname': 'Apelido',
  'auth.password': 'Senha',
  'auth.password.hint': 'Pelo menos 8 caracteres, diferente do apelido.',
  'auth.nickname.hint': 'De 3 a 32 letras, dígitos, pontos, hífens ou sublinhados; começa com letra ou dígito.',
  'auth.themes': 'Temas que você segue',
  'auth.themes.hint': 'Escolha sobre o que gostaria de conversar. Dá para mudar quando quiser.',
  'auth.themes.change': 'Mudar meus temas ao entrar',
  'auth.capabilities': 'Como você pode conversar',
  'auth.capabilities.hint': 'Os outros só veem as ações de que você pode participar.',
  'auth.submit.login': 'Entrar',
  'auth.submit.register': 'Criar conta',
  'auth.working': 'Um momento…',
  'auth.themes.none': 'Ainda não há temas neste servidor.',
  'auth.themes.unavailable': 'Não foi possível carregar os temas; você pode escolhê-los depois.',
  'auth.followers': '{n} seguindo',
  'cap.video': 'Vídeo',
  'cap.audio': 'Voz',
  'cap.text': 'Chat de texto',
  'cap.video.long': 'Chamadas de vídeo (câmera)',
  'cap.audio.long': 'Chamadas de voz (microfone)',
  'cap.text.long': 'Chat de texto',
  'status.online': 'Online',
  'status.busy': 'Ocupado(a)',
  'status.away': 'Ausente',
  'status.in_call': 'Em chamada',
  'status.offline': 'Offline',
  'status.mine': 'Seu status',
  'conn.connecting': 'Conectando…',
  'conn.open': 'Conectado',
  'conn.reconnecting': 'Conexão perdida. Reconectando…',
  'conn.reconnecting.in': 'Conexão perdida. Reconectando em {s} s…',
  'conn.retry': 'Tentar agora',
  'conn.closed': 'Desconectado',
  'conn.revoked': 'Sua sessão terminou. Entre novamente.',
  'nav.profile': 'Perfil',
  'nav.logout': 'Sair',
  'lobby.hello': 'Olá, {name}',
  'lobby.title': 'Saguão',
  'lobby.yours': 'Seus temas',
  'lobby.others': 'Outros temas',
  'lobby.nothemes': 'Sem tema',
  'lobby.nothemes.desc': 'Pessoas que ainda não escolheram um tema.',
  'lobby.filters': 'Filtros',
  'lobby.filter.search': 'Buscar pessoas',
  'lobby.filter.theme': 'Tema',
  'lobby.filter.theme.all': 'Todos os temas',
  'lobby.filter.cap': 'Conversa por',
  'lobby.filter.cap.any': 'Qualquer meio',
  'lobby.filter.avail': 'Mostrar',
  'lobby.filter.avail.all': 'Todos',
  'lobby.filter.avail.online': 'Online agora',
  'lobby.filter.avail.available': 'Disponíveis para conversar',
  'lobby.card.count': '{online} online · {total} pessoas',
  'lobby.card.count.one': '{online} online · 1 pessoa',
  'lobby.quiet': 'Sem ninguém agora',
  'lobby.card.empty': 'Ninguém aqui com esses filtros.',
  'lobby.shared': 'Tem {n} dos seus temas',
  'lobby.you': 'você',
  'lobby.empty': 'Nenhum tema com esses filtros.',
  'action.video': 'Chamada de vídeo com {name}',
  'action.audio': 'Chamada de voz com {name}',
  'action.chat': 'Conversar com {name}',
  'action.unavailable': '{name} está {status}',
  'missed.title': 'Chamadas perdidas',
  'missed.item': '{name} ligou para você ({media}) · {time}',
  'missed.callback': 'Retornar',
  'missed.dismiss': 'Dispensar',
  'missed.clear': 'Limpar tudo',
  'media.video': 'vídeo',
  'media.audio': 'voz',
  'media.chat': 'chat',
  'incoming.title': 'Chamada recebida',
  'incoming.video': '{name} está ligando para você — chamada de vídeo',
  'incoming.audio': '{name} está ligando para você — chamada de voz',
  'incoming.chat': '{name} quer conversar com você',
  'incoming.join': '{name} convida você para uma chamada',
  'incoming.accept': 'Atender',
  'incoming.accept.chat': 'Abrir chat',
  'incoming.decline': 'Recusar',
  'call.calling': 'Ligando para {name}…',
  'call.ringing': 'Chamando…',
  'call.cancel': 'Cancelar',
  'call.declined': '{name} recusou a chamada.',
  'call.busy': '{name} está ocupado(a) agora.',
  'call.missed.caller': '{name} não atendeu.',
  'call.missed.callee': 'Você perdeu uma chamada de {name}.',
  'call.cancelled': '{name} cancelou a chamada.',
  'call.ended': 'Chamada encerrada.',
  'call.ended.by': '{name} encerrou a chamada.',
  'call.ended.lost': '{name} perdeu a conexão e não voltou: a chamada terminou.',
  'call.left': '{name} saiu da chamada.',
  'call.left.lost': '{name} perdeu a conexão e saiu da chamada.',
  'call.lost': 'A chamada terminou enquanto você estava desconectado(a).',
  'call.reconnecting': 'Conexão perdida — reconectando… a chamada continua.',
  'call.peer.away': '{names} perdeu a conexão — aguardando a volta…',
  'call.cancelled.offline': 'Conexão perdida: sua chamada foi cancelada.',
  'call.elsewhere': 'Atendida em outro dispositivo.',
  'call.failed': 'Não foi possível iniciar a chamada: {reason}',
  'call.crossed': '{name} estava ligando para você ao mesmo tempo — entrando na chamada.',
  'call.title': 'Chamada',
  'call.with': 'Chamada com {names}',
  'call.you': 'Você',
  'call.mute': 'Desligar microfone',
  'call.unmute': 'Ligar microfone',
  'call.camera.off': 'Desligar câmera',
  'call.camera.on': 'Ligar câmera',
  'call.hangup': 'Desligar',
  'call.invite': 'Adicionar pessoa',
  'call.invite.title': 'Convidar alguém para esta chamada',
  'call.invite.none': 'Ninguém mais está disponível para esta chamada agora.',
  'call.invite.ringing': 'Chamando {name}…',
  'call.invite.close': 'Fechar',
  'call.waiting': 'Esperando os outros se conectarem…',
  'call.nocamera': 'Sem câmera disponível: você está na chamada só com a voz.',
  'call.nomedia': 'Sem câmera nem microfone: você vê e ouve os outros.',
  'call.timer': 'Duração da chamada',
  'call.chat': 'Abrir o chat',
  'peer.new': 'Conectando',
  'peer.connecting': 'Conectando',
  'peer.connected': 'Conectado',
  'peer.disconnected': 'Reconectando',
  'peer.failed': 'Falha na conexão, tentando de novo',
  'peer.closed': 'Saiu',
  'peer.away': 'Conexão perdida, aguardando…',
  'chat.title': 'Conversa com {name}',
  'chat.close': 'Fechar conversa com {name}',
  'chat.input': 'Mensagem para {name}',
  'chat.send': 'Enviar',
  'chat.pending': 'Enviando…',
  'chat.delivered': 'Entregue',
  'chat.failed': 'Não enviada: {reason}',
  'chat.typing': '{name} está digitando…',
  'chat.older': 'Carregar mensagens anteriores',
  'chat.beginning': 'Este é o começo da conversa.',
  'chat.offline': '{name} está offline: verá suas mensagens ao abrir esta conversa.',
  'chat.notified': '{name} foi convidado(a) a abrir esta conversa.',
  'chat.unavailable': 'Chat indisponível: {reason}',
  'chat.log': 'Mensagens',
  'profile.title': 'Seu perfil',
  'profile.save': 'Salvar',
  'profile.cancel': 'Cancelar',
  'profile.saved': 'Perfil salvo.',
  'toast.close': 'Dispensar',
  'error.network': 'Não foi possível falar com o servidor. Verifique a conexão e tente de novo.',
  'error.generic': 'Algo deu errado: {reason}',
  'error.caps': 'Escolha pelo menos um meio de conversa.',
};

const DICTIONARIES = { en, 'pt-BR': pt };

let current = pickLanguage();
const listeners = new Set();

function pickLanguage() {
  try {
    const saved = globalThis.localStorage?.getItem(STORAGE_KEY);
    if (saved && DICTIONARIES[saved]) return saved;
  } catch {
    // Storage can be blocked; fall back to the browser's languages.
  }
  const wanted = globalThis.navigator?.languages || [globalThis.navigator?.language || 'en'];
  for (const lang of wanted) {
    if (/^pt\b/i.test(lang)) return 'pt-BR';
    if (/^en\b/i.test(lang)) return 'en';
  }
  return 'en';
}

/** The language in use (`en` or `pt-BR`). */
export function language() {
  return current;
}

/** Switches language, remembers it and tells every listener. */
export function setLanguage(lang) {
  if (!DICTIONARIES[lang]) return;
  current = lang;
  try {
    globalThis.localStorage?.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered; still switched.
  }
  listeners.forEach((fn) => fn(lang));
}

/** Calls `fn(lang)` after every switch. */
export function onLanguageChange(fn) {
  listeners.add(fn);
}

/** The text for `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars = {}) {
  const text = DICTIONARIES[current][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`).toString());
}

/** Translates the static page: `data-i18n` (text), `data-i18n-label` (aria-label), `data-i18n-placeholder`. */
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
}

/** A time of day in the current language. */
export function formatTime(ms) {
  return new Intl.DateTimeFormat(current, { hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
}

/** A date and time in the current language (short). */
export function formatDateTime(ms) {
  return new Intl.DateTimeFormat(current, { dateStyle: 'short', timeStyle: 'short' }).format(new Date(ms));
}
