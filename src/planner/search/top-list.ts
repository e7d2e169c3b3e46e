/** The best `size` items seen so far under `compare` (negative: a is better), kept sorted. */
export class TopList<T> {
  private readonly list: T[] = [];

  constructor(
    private readonly size: number,
    private readonly compare: (a: T, b: T) => number,
  ) {}

  offer(item: T): void {
    const list = this.list;
    if (list.length >= this.size && this.compare(item, list[list.length - 1]!) >= 0) return;
    let i = list.length;
    while (i > 0 && this.compare(item, list[i - 1]!) < 0) i--;
    list.splice(i, 0, item);
    if (list.length > this.size) list.pop();
  }

  /** The worst item kept, once the list is full; undefined before. */
  last(): T | undefined {
    return this.list.length >= this.size ? this.list[this.list.length - 1] : undefined;
  }

  items(): T[] {
    return [...this.list];
  }
}
