// Syntax colouring for the REPL editor: a small tokenizer per language family
// (comments, strings, numbers, keywords). The editor is a textarea over a
// <pre> of these tokens, so typing stays native (undo, IME, screen readers).

const keywords = {
  python: 'and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield print',
  javascript: 'async await break case catch class const continue debugger default delete do else export extends false finally for function if import in instanceof let new null of return static super switch this throw true try typeof undefined var void while with yield console',
  c: 'auto bool break case char const continue default do double else enum extern false float for goto if include inline int long namespace nullptr return short signed sizeof static std struct switch template true typedef typename union unsigned using void volatile while class public private protected virtual',
  go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false fmt',
  rust: 'as break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while println',
  shell: 'if then else elif fi for while do done case esac function in echo exit return local export',
};
const families = { python: 'python', node: 'javascript', javascript: 'javascript', js: 'javascript', c: 'c', cpp: 'c', go: 'go', rust: 'rust', bash: 'shell', sh: 'shell' };

function family(language) {
  const base = String(language).toLowerCase().replace(/[0-9.]+$/, '');
  return families[base] ?? 'python';
}

export function tokens(code, language) {
  const fam = family(language);
  const words = new Set(keywords[fam].split(' '));
  const lineComment = fam === 'python' || fam === 'shell' ? '#' : '//';
  const out = [];
  let i = 0;
  const push = (kind, text) => out.push({ kind, text });
  while (i < code.length) {
    const rest = code.slice(i);
    let m;
    if (rest.startsWith(lineComment)) {
      const end = code.indexOf('\n', i);
      const stop = end < 0 ? code.length : end;
      push('comment', code.slice(i, stop));
      i = stop;
    } else if (fam !== 'python' && fam !== 'shell' && rest.startsWith('/*')) {
      const end = code.indexOf('*/', i + 2);
      const stop = end < 0 ? code.length : end + 2;
      push('comment', code.slice(i, stop));
      i = stop;
    } else if ((m = /^("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`(?:[^`\\]|\\.)*`?)/.exec(rest))) {
      push('string', m[0]);
      i += m[0].length;
    } else if ((m = /^\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(rest))) {
      push('number', m[0]);
      i += m[0].length;
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      push(words.has(m[0]) ? 'keyword' : 'plain', m[0]);
      i += m[0].length;
    } else {
      push('plain', code[i]);
      i += 1;
    }
  }
  return out;
}

export function paint(pre, code, language) {
  const frag = document.createDocumentFragment();
  for (const t of tokens(code, language)) {
    if (t.kind === 'plain') frag.append(t.text);
    else {
      const span = document.createElement('span');
      span.className = `tok-${t.kind}`;
      span.textContent = t.text;
      frag.append(span);
    }
  }
  frag.append('\n'); // keeps the last line's height when the code ends with a newline
  pre.replaceChildren(frag);
}
